//! Line numbers of dotted key paths, from a span-keeping parse (`toml_edit::ImDocument`).

/// 1-based line number of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.char_indices()
        .take_while(|(i, _)| *i < offset)
        .filter(|(_, c)| *c == '\n')
        .count()
        + 1
}

/// The key assigned on 1-based `line` of `text` (`key = ...`), prefixed with the table header
/// above it (`[address.probe]` gives `address.probe.timeout_ms`; an array of tables is named
/// without its index); `None` when the line assigns nothing. For errors the parser reports
/// before any key path is known (a number too large for TOML).
pub(super) fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (k, _) = lines.get(line.checked_sub(1)?)?.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || k.starts_with(['#', '[']) {
        return None;
    }
    let table = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|h| h.trim_matches(['[', ']']).trim().to_string());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{k}"),
        _ => k.to_string(),
    })
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
