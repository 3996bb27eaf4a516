//! The crate's module tree as parsed by `syn`: files found the way rustc finds them (`name.rs`,
//! `name/mod.rs`, `#[path]`), `#[cfg(test)]` items left out, and the leaves of `use` trees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use syn::{Attribute, Item, UseTree, Visibility};

use crate::render::quote_tokens;

/// One parsed module of the crate.
pub(crate) struct Module {
    pub(crate) items: Vec<Item>,
    /// Child modules by name (index into [`Crate::mods`]).
    pub(crate) children: BTreeMap<String, usize>,
    pub(crate) parent: Option<usize>,
}

pub(crate) struct Crate {
    pub(crate) mods: Vec<Module>,
}

pub(crate) fn load(
    c: &mut Crate,
    file: &Path,
    dir: PathBuf,
    parent: Option<usize>,
) -> Result<usize, String> {
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
            let t = quote_tokens(&a.meta);
            t.contains("test") && !t.contains("not")
        }
    })
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

pub(crate) fn is_pub(v: &Visibility) -> bool {
    matches!(v, Visibility::Public(_))
}

pub(crate) fn item_name(item: &Item) -> Option<String> {
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

pub(crate) fn item_vis(item: &Item) -> Option<&Visibility> {
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

pub(crate) enum Leaf {
    Glob,
    /// Name and the alias it is exported under.
    Name(String, String),
}

pub(crate) fn use_leaves(
    tree: &UseTree,
    mut path: Vec<String>,
    out: &mut Vec<(Vec<String>, Leaf)>,
) {
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
