//! Items made by `macro_rules!`: the entries of an invocation and the public shapes the macro writes.

use proc_macro2::{Delimiter, TokenStream, TokenTree};

use crate::render::tokens_text;

pub(crate) fn mentions(t: &TokenTree, name: &str) -> bool {
    match t {
        TokenTree::Ident(i) => i == name,
        TokenTree::Group(g) => g.stream().into_iter().any(|t| mentions(&t, name)),
        _ => false,
    }
}

/// Entries of a macro invocation: split at top-level `;` or `,`, doc attributes dropped.
pub(crate) fn split_top(ts: TokenStream) -> Vec<String> {
    let semi = ts
        .clone()
        .into_iter()
        .any(|t| matches!(&t, TokenTree::Punct(p) if p.as_char() == ';'));
    let sep = if semi { ';' } else { ',' };
    let mut entries = Vec::new();
    let mut cur = Vec::new();
    let mut iter = ts.into_iter().peekable();
    while let Some(tt) = iter.next() {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == '#' => {
                if let Some(TokenTree::Group(g)) = iter.peek() {
                    if g.delimiter() == Delimiter::Bracket
                        && g.stream().to_string().starts_with("doc")
                    {
                        iter.next();
                        continue;
                    }
                }
                cur.push(tt);
            }
            TokenTree::Punct(p) if p.as_char() == sep => {
                push_entry(&mut entries, &mut cur);
            }
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace && !cur.is_empty() => {
                // `Name { a, b; c }`: the head on its own line, then one line per inner entry.
                let head = tokens_text(cur.drain(..).collect());
                for e in split_top(g.stream()) {
                    entries.push(format!("{head} {{ {e} }}"));
                }
            }
            _ => cur.push(tt),
        }
    }
    push_entry(&mut entries, &mut cur);
    entries
}

fn push_entry(entries: &mut Vec<String>, cur: &mut Vec<TokenTree>) {
    if !cur.is_empty() {
        entries.push(tokens_text(cur.drain(..).collect()));
    }
}

/// What a `macro_rules!` body writes that is public: `pub fn` signatures, `impl ... for` and
/// `impl` headers, derives, `pub enum`/`pub struct` lines.
pub(crate) fn macro_signatures(body: TokenStream) -> Vec<String> {
    let mut out = Vec::new();
    let tts: Vec<TokenTree> = body.into_iter().collect();
    let mut i = 0;
    while i < tts.len() {
        let word = match &tts[i] {
            TokenTree::Ident(id) => id.to_string(),
            TokenTree::Group(g) => {
                out.extend(macro_signatures(g.stream()));
                i += 1;
                continue;
            }
            _ => String::new(),
        };
        let starts = match word.as_str() {
            "pub" => {
                matches!(tts.get(i + 1), Some(TokenTree::Ident(n)) if ["fn", "enum", "struct", "const"].contains(&n.to_string().as_str()))
            }
            "impl" => true,
            "derive" => true,
            _ => false,
        };
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < tts.len() {
            match &tts[j] {
                TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => break,
                TokenTree::Group(g)
                    if word == "derive" && g.delimiter() == Delimiter::Parenthesis =>
                {
                    j += 1;
                    break;
                }
                TokenTree::Punct(p) if p.as_char() == ';' => break,
                _ => j += 1,
            }
        }
        out.push(tokens_text(tts[i..j].iter().cloned().collect()));
        i = j;
    }
    out
}
