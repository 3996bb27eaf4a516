//! Release checks of the crates this workspace publishes (`drbd-nl`, `drbd-md`, `vip`, `tgt-ipc`).
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

mod macros;
mod render;
mod tree;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proc_macro2::TokenStream;
use syn::{Attribute, Fields, Item};

use macros::{macro_signatures, mentions, split_top};
use render::{collapse, derives, fn_line, generics, quote_tokens, ty, unparse_item};
use tree::{is_pub, item_name, item_vis, load, use_leaves, Crate, Leaf};

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

fn prefix_root(prefix: &str) -> &str {
    prefix.split("::").next().unwrap_or(prefix)
}
