//! The reference parser never panics, and what it accepts round-trips: the full form parses to
//! the same reference, and so does the familiar form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_image::Reference;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        let full = r.to_string();
        assert_eq!(
            Reference::parse(&full).as_ref(),
            Ok(&r),
            "{s:?} -> {full:?}"
        );
        // As in Docker, `docker.io/r.io/x` has the familiar form `r.io/x`, which names the
        // registry `r.io`: the short form is only unambiguous when the path's first component
        // does not look like a domain (found by this target).
        let first = r.path().split('/').next().unwrap_or("");
        let ambiguous =
            r.domain() == "docker.io" && (first.contains(['.', ':']) || first == "localhost");
        if !ambiguous {
            assert_eq!(
                Reference::parse(&r.familiar()).as_ref(),
                Ok(&r),
                "{s:?} -> {:?}",
                r.familiar()
            );
        }
    }
});
