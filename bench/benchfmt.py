"""Number helpers shared by the benchmark scripts' table renderers (bench/*.sh embed Python
that imports this from $BENCH_DIR)."""
import statistics as st


def num(v):
    """A number from a raw field ("1,234", "0.35ms", "n/a"); NaN when it is not one."""
    try:
        return float(str(v).rstrip("msx ").replace(",", ""))
    except ValueError:
        return float("nan")


def med(xs):
    """The median of the numbers among xs (NaN left out); NaN when there are none."""
    xs = [x for x in xs if x == x]
    return st.median(xs) if xs else float("nan")


def f0(x):
    return "n/a" if x != x else f"{x:,.0f}"


def f2(x):
    return "n/a" if x != x else f"{x:.2f}"


def f3(x):
    return "n/a" if x != x else f"{x:.3f}"
