//! The WikiText-2 test text shipped in `data/wikitext-2-raw` (so the demo, the example recipes
//! and the tests run with nothing beside the clone) is the standard file, byte for byte.

mod common;

/// SHA-256 of WikiText-2 raw v1's `wiki.test.raw` (1,290,590 bytes).
const WIKI_TEST_RAW_SHA256: &str = "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08";

#[test]
fn shipped_wikitext_is_the_standard_file() {
    let shipped = std::fs::read(common::wiki_text()).unwrap();
    assert_eq!(shipped.len(), 1_290_590);
    assert_eq!(common::sha256_hex(&shipped), WIKI_TEST_RAW_SHA256);
    assert!(common::root().join("data/wikitext-2-raw/LICENSE.md").is_file(), "the text ships with its licence");
    // Where the shared data folder is beside the clone (this workplace's CI), it holds the
    // same bytes (then the hash above says it too).
    let shared = common::root().join("../shared/data/wiki.test.raw");
    if let Ok(bytes) = std::fs::read(&shared) {
        assert_eq!(bytes, shipped, "{}", shared.display());
    }
}
