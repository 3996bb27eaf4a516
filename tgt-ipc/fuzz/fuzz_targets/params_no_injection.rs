//! Any values pushed into a params string: whatever is accepted splits back into exactly the pairs pushed
//! (no value can inject a `,` or `=`), and the string stays within tgtd's limit.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut p = tgt_ipc::Params::new();
    let mut pushed = Vec::new();
    for v in text.split('\u{1}') {
        if p.push("k", v).is_ok() {
            pushed.push(v.to_string());
        }
    }
    if pushed.is_empty() {
        assert!(p.is_empty());
        return;
    }
    let parts: Vec<&str> = p.as_str().split(',').collect();
    assert_eq!(parts.len(), pushed.len());
    for (part, v) in parts.iter().zip(&pushed) {
        let (k, val) = part.split_once('=').expect("every pair has '='");
        assert_eq!(k, "k");
        assert_eq!(val, v);
        assert!(!val.contains('='));
    }
    assert!(p.as_str().len() < tgt_ipc::MAX_PARAMS_LEN);
    assert!(!p.as_str().contains('\0'));
});
