//! iscsi-ha agent library: config, role sources, state machine, backends.
