//! Release checks of the crates this workspace publishes (`drbd-nl`, `vip`, `tgt-ipc`).
//!
//! [`public_api`] lists a library's public surface from its source, one item per line, sorted:
//! every item reachable from the crate root through `pub mod` and `pub use` (globs included), the
//! signatures of public functions and methods, public fields, enum variants, trait impls and
//! derives, and for items made by a local `macro_rules!` the invocation's entries and the
//! signatures the macro writes. The tests compare it with the committed `<crate>/public-api.txt`.
//!
//! Why not `cargo public-api` or `cargo-semver-checks`: both read rustdoc's JSON output, which
//! needs a nightly toolchain (or `RUSTC_BOOTSTRAP`) and changes format between toolchains; this
//! machine and CI have one stable toolchain. Parsing the source with `syn` is stable, and a change
//! of any listed line (an item added, removed, renamed or re-typed) makes the test fail until the
//! listing is updated on purpose. Not covered: auto traits (`Send`, `Sync`) and items written by a
//! macro from another crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Attribute, Fields, Item, UseTree, Visibility};

/// One parsed module of the crate.
struct Module {
    items: Vec<Item>,
    /// Child modules by name (index into [`Crate::mods`]).
    children: BTreeMap<String, usize>,
    parent: Option<usize>,
}

struct Crate {
    mods: Vec<Module>,
}

/// The public API listing of the library whose root file is `lib_rs`, named `krate` in paths.
///
/// # Errors
/// A module file that is missing or does not parse, as text naming the file.
pub fn public_api(lib_rs: &Path, krate: &str) -> Result<String, String> {
    let mut c = Crate { mods: Vec::new() };
    let dir = lib_rs.parent().unwrap_or(Path::new(".")).to_path_buf();
    load(&mut c, lib_rs, dir, None)?;
    let mut out = Lister {
        c: &c,
        lines: BTreeSet::new(),
        types: BTreeMap::new(),
        seen: BTreeSet::new(),
    };
    out.export_module(0, krate);
    out.impls();
    Ok(out.lines.into_iter().collect::<Vec<_>>().join("\n") + "\n")
}

fn load(c: &mut Crate, file: &Path, dir: PathBuf, parent: Option<usize>) -> Result<usize, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let parsed = syn::parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    load_items(c, parsed.items, dir, parent, file)
}

fn load_items(
    c: &mut Crate,
    items: Vec<Item>,
    dir: PathBuf,
    parent: Option<usize>,
    file: &Path,
) -> Result<usize, String> {
    let id = c.mods.len();
    c.mods.push(Module {
        items: Vec::new(),
        children: BTreeMap::new(),
        parent,
    });
    let mut kept = Vec::new();
    for item in items {
        if is_cfg_test(item_attrs(&item)) {
            continue;
        }
        if let Item::Mod(m) = &item {
            let name = m.ident.to_string();
            let child = match &m.content {
                Some((_, inner)) => load_items(c, inner.clone(), dir.join(&name), Some(id), file)?,
                None => {
                    let path = path_attr(&m.attrs)
                        .map(|p| file.parent().unwrap_or(Path::new(".")).join(p))
                        .or_else(|| {
                            [
                                dir.join(format!("{name}.rs")),
                                dir.join(&name).join("mod.rs"),
                            ]
                            .into_iter()
                            .find(|p| p.is_file())
                        })
                        .ok_or_else(|| format!("module {name} of {}: no file", file.display()))?;
                    let child_dir = if path.file_name().is_some_and(|f| f == "mod.rs") {
                        path.parent().unwrap_or(Path::new(".")).to_path_buf()
                    } else {
                        dir.join(&name)
                    };
                    load(c, &path, child_dir, Some(id))?
                }
            };
            c.mods[id].children.insert(name, child);
        }
        kept.push(item);
    }
    c.mods[id].items = kept;
    Ok(id)
}

fn path_attr(attrs: &[Attribute]) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.path().is_ident("path"))
        .and_then(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
}

fn is_cfg_test(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && {
            let t = a.meta.to_token_stream_string();
            t.contains("test") && !t.contains("not")
        }
    })
}

trait MetaText {
    fn to_token_stream_string(&self) -> String;
}
impl MetaText for syn::Meta {
    fn to_token_stream_string(&self) -> String {
        quote_tokens(self)
    }
}

fn quote_tokens(t: &impl ToTokens) -> String {
    let mut ts = TokenStream::new();
    t.to_tokens(&mut ts);
    ts.to_string()
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn is_pub(v: &Visibility) -> bool {
    matches!(v, Visibility::Public(_))
}

fn item_name(item: &Item) -> Option<String> {
    Some(
        match item {
            Item::Const(i) => &i.ident,
            Item::Enum(i) => &i.ident,
            Item::Fn(i) => &i.sig.ident,
            Item::Mod(i) => &i.ident,
            Item::Static(i) => &i.ident,
            Item::Struct(i) => &i.ident,
            Item::Trait(i) => &i.ident,
            Item::Type(i) => &i.ident,
            Item::Union(i) => &i.ident,
            _ => return None,
        }
        .to_string(),
    )
}

struct Lister<'a> {
    c: &'a Crate,
    lines: BTreeSet<String>,
    /// Type name (as written in impls) → public paths.
    types: BTreeMap<String, Vec<String>>,
    /// (module, prefix) pairs already exported (globs may meet twice).
    seen: BTreeSet<(usize, String)>,
}

enum Target {
    Module(usize),
    Item(usize, String),
    External(String),
}

impl Lister<'_> {
    fn export_module(&mut self, m: usize, prefix: &str) {
        if !self.seen.insert((m, prefix.to_string())) {
            return;
        }
        let c = self.c;
        for item in &c.mods[m].items {
            match item {
                Item::Use(u) if is_pub(&u.vis) => {
                    let mut leaves = Vec::new();
                    use_leaves(&u.tree, Vec::new(), &mut leaves);
                    for (path, leaf) in leaves {
                        self.export_use(m, prefix, &path, leaf);
                    }
                }
                Item::Macro(mac) if mac.ident.is_none() => self.macro_call(m, prefix, mac),
                Item::Macro(mac) if mac.attrs.iter().any(|a| a.path().is_ident("macro_export")) => {
                    if let Some(id) = &mac.ident {
                        self.lines
                            .insert(format!("macro {}::{id}!", prefix_root(prefix)));
                    }
                }
                _ => {
                    if let Some(name) = item_name(item) {
                        if item_vis(item).is_some_and(is_pub) {
                            self.export_item(m, item, &format!("{prefix}::{name}"));
                        }
                    }
                }
            }
        }
    }

    fn export_use(&mut self, m: usize, prefix: &str, path: &[String], leaf: Leaf) {
        match leaf {
            Leaf::Glob => match self.resolve_module(m, path) {
                Some(Target::Module(t)) => self.export_module(t, prefix),
                _ => {
                    self.lines
                        .insert(format!("pub use {prefix}::* = {}::*", path.join("::")));
                }
            },
            Leaf::Name(name, alias) => {
                let at = format!("{prefix}::{alias}");
                let mut full = path.to_vec();
                full.push(name.clone());
                match self.resolve(m, &full) {
                    Target::Module(t) => {
                        self.lines.insert(format!("pub mod {at}"));
                        self.export_module(t, &at);
                    }
                    Target::Item(t, n) => {
                        let c = self.c;
                        let found = c.mods[t]
                            .items
                            .iter()
                            .find(|i| item_name(i).as_deref() == Some(&n));
                        match found {
                            Some(item) => self.export_item(t, item, &at),
                            None => {
                                self.lines.insert(format!("pub {at} (made by a macro)"));
                                self.macros_naming(t, &n);
                                self.types.entry(n).or_default().push(at);
                            }
                        }
                    }
                    Target::External(p) => {
                        self.lines.insert(format!("pub use {at} = {p}"));
                    }
                }
            }
        }
    }

    /// Resolves `path` as written in module `m` to a module, an item or an external path.
    fn resolve(&self, m: usize, path: &[String]) -> Target {
        let Some((last, init)) = path.split_last() else {
            return Target::Module(m);
        };
        match self.resolve_module(m, init) {
            Some(Target::Module(t)) => {
                if let Some(&child) = self.c.mods[t].children.get(last) {
                    return Target::Module(child);
                }
                // Re-exported by a `use` in `t`?
                for item in &self.c.mods[t].items {
                    if let Item::Use(u) = item {
                        let mut leaves = Vec::new();
                        use_leaves(&u.tree, Vec::new(), &mut leaves);
                        for (p, leaf) in leaves {
                            if let Leaf::Name(n, alias) = leaf {
                                if &alias == last {
                                    let mut full = p.clone();
                                    full.push(n);
                                    return self.resolve(t, &full);
                                }
                            }
                        }
                    }
                }
                Target::Item(t, last.clone())
            }
            Some(other) => other,
            None => Target::External(path.join("::")),
        }
    }

    fn resolve_module(&self, m: usize, path: &[String]) -> Option<Target> {
        let mut cur = m;
        for (i, seg) in path.iter().enumerate() {
            cur = match seg.as_str() {
                "crate" if i == 0 => 0,
                "self" if i == 0 => cur,
                "super" => self.c.mods[cur].parent?,
                s => match self.c.mods[cur].children.get(s) {
                    Some(&child) => child,
                    None if i == 0 => return None,
                    None => return Some(Target::External(path.join("::"))),
                },
            };
        }
        Some(Target::Module(cur))
    }

    fn export_item(&mut self, m: usize, item: &Item, at: &str) {
        match item {
            Item::Mod(_) => {
                if let Some(&child) = self.c.mods[m]
                    .children
                    .get(&item_name(item).unwrap_or_default())
                {
                    self.lines.insert(format!("pub mod {at}"));
                    self.export_module(child, at);
                }
            }
            Item::Fn(f) => {
                self.lines.insert(fn_line(&f.sig, at));
            }
            Item::Const(k) => {
                self.lines.insert(format!("pub const {at}: {}", ty(&k.ty)));
            }
            Item::Static(s) => {
                self.lines.insert(format!("pub static {at}: {}", ty(&s.ty)));
            }
            Item::Type(t) => {
                self.lines.insert(format!(
                    "pub type {at}{} = {}",
                    generics(&t.generics),
                    ty(&t.ty)
                ));
            }
            Item::Struct(s) => {
                self.type_header("struct", at, &s.attrs, &s.generics, &s.ident);
                self.fields(at, &s.fields);
            }
            Item::Union(u) => {
                self.type_header("union", at, &u.attrs, &u.generics, &u.ident);
                self.fields(at, &Fields::Named(u.fields.clone()));
            }
            Item::Enum(e) => {
                self.type_header("enum", at, &e.attrs, &e.generics, &e.ident);
                for v in &e.variants {
                    let mut v = v.clone();
                    v.attrs.retain(|a| !a.path().is_ident("doc"));
                    let text = unparse_item(syn::parse_quote!(enum E { #v }));
                    let inner = text
                        .trim()
                        .trim_start_matches("enum E {")
                        .trim_end_matches('}');
                    let inner = collapse(inner);
                    self.lines
                        .insert(format!("pub {at}::{}", inner.trim_end_matches(',').trim()));
                }
            }
            Item::Trait(t) => {
                let mut t2 = t.clone();
                t2.attrs.clear();
                t2.items.clear();
                let head = collapse(&unparse_item(Item::Trait(t2)));
                let head = head.trim_end_matches("{}").trim();
                let head = head.replacen(&format!("trait {}", t.ident), &format!("trait {at}"), 1);
                self.lines.insert(head);
                for ti in &t.items {
                    match ti {
                        syn::TraitItem::Fn(f) => {
                            self.lines
                                .insert(fn_line(&f.sig, &format!("{at}::{}", f.sig.ident)));
                        }
                        syn::TraitItem::Type(ty) => {
                            self.lines.insert(format!("type {at}::{}", ty.ident));
                        }
                        syn::TraitItem::Const(k) => {
                            self.lines.insert(format!(
                                "const {at}::{}: {}",
                                k.ident,
                                self::ty(&k.ty)
                            ));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn type_header(
        &mut self,
        kind: &str,
        at: &str,
        attrs: &[Attribute],
        g: &syn::Generics,
        ident: &syn::Ident,
    ) {
        let ne = if attrs.iter().any(|a| a.path().is_ident("non_exhaustive")) {
            "#[non_exhaustive] "
        } else {
            ""
        };
        self.lines
            .insert(format!("{ne}pub {kind} {at}{}", generics(g)));
        for d in derives(attrs) {
            self.lines.insert(format!("impl {d} for {at} (derived)"));
        }
        self.types
            .entry(ident.to_string())
            .or_default()
            .push(at.to_string());
    }

    fn fields(&mut self, at: &str, fields: &Fields) {
        let mut private = false;
        for (i, f) in fields.iter().enumerate() {
            if !is_pub(&f.vis) {
                private = true;
                continue;
            }
            let name = f.ident.as_ref().map_or(i.to_string(), ToString::to_string);
            self.lines.insert(format!("pub {at}.{name}: {}", ty(&f.ty)));
        }
        if private {
            self.lines.insert(format!("{at} has private fields"));
        }
    }

    /// A module-level macro invocation: its entries (one line each, doc attributes dropped), and
    /// what the local `macro_rules!` of that name writes (public fn signatures, impl headers, derives).
    fn macro_call(&mut self, m: usize, prefix: &str, mac: &syn::ItemMacro) {
        let name = collapse(&quote_tokens(&mac.mac.path));
        let place = format!("{prefix} {name}!");
        for entry in split_top(mac.mac.tokens.clone()) {
            self.lines.insert(format!("macro-made in {place}: {entry}"));
        }
        let def = mac
            .mac
            .path
            .get_ident()
            .and_then(|i| self.find_macro_rules(m, &i.to_string()));
        for sig in def.map(macro_signatures).unwrap_or_default() {
            self.lines
                .insert(format!("macro-made in {place} (each): {sig}"));
        }
    }

    /// The macro invocations of module `m` that mention `name` (they make the item).
    fn macros_naming(&mut self, m: usize, name: &str) {
        let c = self.c;
        let place = self.mod_path(m);
        for item in &c.mods[m].items {
            if let Item::Macro(mac) = item {
                let mentions = mac
                    .mac
                    .tokens
                    .clone()
                    .into_iter()
                    .any(|t| mentions(&t, name));
                if mac.ident.is_none() && mentions {
                    self.macro_call(m, &place, mac);
                }
            }
        }
    }

    /// `crate::a::b` for a module (private modules included).
    fn mod_path(&self, m: usize) -> String {
        let mut names = Vec::new();
        let mut cur = m;
        while let Some(parent) = self.c.mods[cur].parent {
            if let Some((n, _)) = self.c.mods[parent]
                .children
                .iter()
                .find(|(_, &id)| id == cur)
            {
                names.push(n.clone());
            }
            cur = parent;
        }
        names.push("crate".into());
        names.reverse();
        names.join("::")
    }

    fn find_macro_rules(&self, m: usize, name: &str) -> Option<TokenStream> {
        let mut cur = Some(m);
        while let Some(id) = cur {
            for item in &self.c.mods[id].items {
                if let Item::Macro(def) = item {
                    if def.ident.as_ref().is_some_and(|i| i == name) {
                        return Some(def.mac.tokens.clone());
                    }
                }
            }
            cur = self.c.mods[id].parent;
        }
        None
    }

    /// Inherent public methods and trait impls of every listed type, wherever the impl block is.
    fn impls(&mut self) {
        let c = self.c;
        for module in &c.mods {
            for item in &module.items {
                let Item::Impl(imp) = item else { continue };
                let syn::Type::Path(tp) = &*imp.self_ty else {
                    continue;
                };
                let Some(last) = tp.path.segments.last() else {
                    continue;
                };
                let Some(paths) = self.types.get(&last.ident.to_string()).cloned() else {
                    continue;
                };
                for at in paths {
                    match &imp.trait_ {
                        Some((neg, tr, _)) => {
                            let neg = if neg.is_some() { "!" } else { "" };
                            let tr = collapse(&quote_tokens(tr));
                            self.lines.insert(format!(
                                "impl{} {neg}{tr} for {at}",
                                generics(&imp.generics)
                            ));
                        }
                        None => {
                            for ii in &imp.items {
                                match ii {
                                    syn::ImplItem::Fn(f) if is_pub(&f.vis) => {
                                        self.lines.insert(fn_line(
                                            &f.sig,
                                            &format!("{at}::{}", f.sig.ident),
                                        ));
                                    }
                                    syn::ImplItem::Const(k) if is_pub(&k.vis) => {
                                        self.lines.insert(format!(
                                            "pub const {at}::{}: {}",
                                            k.ident,
                                            ty(&k.ty)
                                        ));
                                    }
                                    _ => {}
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn mentions(t: &TokenTree, name: &str) -> bool {
    match t {
        TokenTree::Ident(i) => i == name,
        TokenTree::Group(g) => g.stream().into_iter().any(|t| mentions(&t, name)),
        _ => false,
    }
}

fn prefix_root(prefix: &str) -> &str {
    prefix.split("::").next().unwrap_or(prefix)
}

fn item_vis(item: &Item) -> Option<&Visibility> {
    Some(match item {
        Item::Const(i) => &i.vis,
        Item::Enum(i) => &i.vis,
        Item::Fn(i) => &i.vis,
        Item::Mod(i) => &i.vis,
        Item::Static(i) => &i.vis,
        Item::Struct(i) => &i.vis,
        Item::Trait(i) => &i.vis,
        Item::Type(i) => &i.vis,
        Item::Union(i) => &i.vis,
        _ => return None,
    })
}

enum Leaf {
    Glob,
    /// Name and the alias it is exported under.
    Name(String, String),
}

fn use_leaves(tree: &UseTree, mut path: Vec<String>, out: &mut Vec<(Vec<String>, Leaf)>) {
    match tree {
        UseTree::Path(p) => {
            path.push(p.ident.to_string());
            use_leaves(&p.tree, path, out);
        }
        UseTree::Name(n) => {
            let s = n.ident.to_string();
            if s == "self" {
                if let Some(last) = path.pop() {
                    out.push((path, Leaf::Name(last.clone(), last)));
                }
            } else {
                out.push((path, Leaf::Name(s.clone(), s)));
            }
        }
        UseTree::Rename(r) => {
            out.push((path, Leaf::Name(r.ident.to_string(), r.rename.to_string())))
        }
        UseTree::Glob(_) => out.push((path, Leaf::Glob)),
        UseTree::Group(g) => {
            for t in &g.items {
                use_leaves(t, path.clone(), out);
            }
        }
    }
}

fn derives(attrs: &[Attribute]) -> Vec<String> {
    let mut out = Vec::new();
    for a in attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let _ = a.parse_nested_meta(|meta| {
            out.push(collapse(&quote_tokens(&meta.path)));
            Ok(())
        });
    }
    out
}

fn unparse_item(item: Item) -> String {
    prettyplease::unparse(&syn::File {
        shebang: None,
        attrs: Vec::new(),
        items: vec![item],
    })
}

fn fn_line(sig: &syn::Signature, at: &str) -> String {
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

fn ty(t: &syn::Type) -> String {
    let text = collapse(&unparse_item(syn::parse_quote!(type X = #t;)));
    text.trim_start_matches("type X = ")
        .trim_end_matches(';')
        .to_string()
}

fn generics(g: &syn::Generics) -> String {
    if g.params.is_empty() {
        return String::new();
    }
    let mut s = TokenStream::new();
    g.to_tokens(&mut s);
    collapse(&s.to_string())
}

/// One line, single spaces, no space inside brackets (prettyplease may wrap long signatures).
fn collapse(s: &str) -> String {
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
fn tokens_text(ts: TokenStream) -> String {
    collapse(&ts.to_string())
        .replace("$ ", "$")
        .replace(" (", "(")
        .replace(" <", "<")
        .replace("& ", "&")
        .replace(" !", "!")
}

/// Entries of a macro invocation: split at top-level `;` or `,`, doc attributes dropped.
fn split_top(ts: TokenStream) -> Vec<String> {
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
fn macro_signatures(body: TokenStream) -> Vec<String> {
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
