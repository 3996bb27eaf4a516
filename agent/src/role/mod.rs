//! Role sources: where the primary/secondary decision comes from. One is active per node.

pub mod command;
pub mod pool_conf;
