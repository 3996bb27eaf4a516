//! Items and types as one line of text: prettyplease for the Rust, then whitespace collapsed.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Attribute, Item};

pub(crate) fn quote_tokens(t: &impl ToTokens) -> String {
    let mut ts = TokenStream::new();
    t.to_tokens(&mut ts);
    ts.to_string()
}

pub(crate) fn derives(attrs: &[Attribute]) -> Vec<String> {
    let mut out = Vec::new();
    for a in attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let _ = a.parse_nested_meta(|meta| {
            out.push(collapse(&quote_tokens(&meta.path)));
            Ok(())
        });
    }
    out
}

pub(crate) fn unparse_item(item: Item) -> String {
    prettyplease::unparse(&syn::File {
        shebang: None,
        attrs: Vec::new(),
        items: vec![item],
    })
}

pub(crate) fn fn_line(sig: &syn::Signature, at: &str) -> String {
    let f = syn::ItemFn {
        attrs: Vec::new(),
        vis: syn::parse_quote!(pub),
        sig: sig.clone(),
        block: Box::new(syn::parse_quote!({})),
    };
    let text = collapse(&unparse_item(Item::Fn(f)));
    let text = text.trim_end_matches("{}").trim().to_string();
    text.replacen(&format!("fn {}", sig.ident), &format!("fn {at}"), 1)
}

pub(crate) fn ty(t: &syn::Type) -> String {
    let text = collapse(&unparse_item(syn::parse_quote!(type X = #t;)));
    text.trim_start_matches("type X = ")
        .trim_end_matches(';')
        .to_string()
}

pub(crate) fn generics(g: &syn::Generics) -> String {
    if g.params.is_empty() {
        return String::new();
    }
    let mut s = TokenStream::new();
    g.to_tokens(&mut s);
    collapse(&s.to_string())
}

/// One line, single spaces, no space inside brackets (prettyplease may wrap long signatures).
pub(crate) fn collapse(s: &str) -> String {
    let one = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = one
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(", )", ")")
        .replace(",)", ")")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" ::", "::");
    while out.contains(",,") {
        out = out.replace(",,", ",");
    }
    out
}

/// Macro tokens as text, spaced like code (`$name`, `f(&self)`, `From<i32>`).
pub(crate) fn tokens_text(ts: TokenStream) -> String {
    collapse(&ts.to_string())
        .replace("$ ", "$")
        .replace(" (", "(")
        .replace(" <", "<")
        .replace("& ", "&")
        .replace(" !", "!")
}
