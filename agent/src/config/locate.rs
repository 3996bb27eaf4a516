//! Line numbers of dotted key paths, from a span-keeping parse (`toml_edit::ImDocument`).

/// 1-based line number of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.char_indices()
        .take_while(|(i, _)| *i < offset)
        .filter(|(_, c)| *c == '\n')
        .count()
        + 1
}

/// Line of a dotted key path like `resource[0].lun[1].scsi_sn`, from a span-keeping parse.
/// Falls back to the deepest parent found.
pub(crate) fn locate(text: &str, path: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut best: Option<usize> = None;
    let mut item: &toml_edit::Item = doc.as_item();
    for seg in path.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let Some((key, child)) = item.as_table_like().and_then(|t| t.get_key_value(name)) else {
            return best;
        };
        if let Some(s) = key.span() {
            best = Some(line_of(text, s.start));
        }
        item = child;
        if let Some(ix) = index {
            let Some(elem) = item.get(ix) else {
                return best;
            };
            if let Some(s) = elem.span() {
                best = Some(line_of(text, s.start));
            }
            item = elem;
        }
    }
    best
}
