# lib.sh - shell functions shared by run-in-vm.sh and cluster.sh (source it).

# copy_with_libs ROOT FILE [DEST]: FILE at ROOT/DEST (default its own path) and the shared
# libraries `ldd` lists for it, at their own paths under ROOT.
copy_with_libs() {
  local root=$1 f=$2 dest=${3:-$2} l
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$f" "$root$dest"
  { ldd "$f" 2>/dev/null || true; } | awk '/=> \//{print $3} /^[[:space:]]*\/[^ ]*ld-linux/{print $1}' |
    while read -r l; do
      [ -e "$root$l" ] && continue
      mkdir -p "$root$(dirname "$l")"; cp -L "$l" "$root$l"
    done
}
