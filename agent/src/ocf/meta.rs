//! The OCF meta-data document (OCF Resource Agent API 1.1).
//!
//! The document names Debian's `ra-api-1.dtd` (what `ocf-tester` validates against) and adds,
//! in its internal subset, the two OCF 1.1 items that DTD predates: the `reload-agent` action
//! and the `reloadable` parameter attribute. The internal subset is read before the external
//! one and the first attribute declaration binds (XML 1.0 §2.8, §3.3), so validation accepts
//! them.

use crate::config::DEFAULT_CONFIG;

/// Default monitor intervals; they differ per role because Pacemaker keys recurring
/// operations by name and interval.
pub const MONITOR_PROMOTED: &str = "9s";
/// See [`MONITOR_PROMOTED`].
pub const MONITOR_UNPROMOTED: &str = "11s";

/// The meta-data XML printed by `meta-data`. Its default action timeouts are the ones the
/// README's Pacemaker section recommends and the lab runs with (a promote waits for DRBD's
/// arbitration and the address probe on a loaded host).
pub fn xml() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd" [
<!ATTLIST action name (start|stop|monitor|promote|demote|notify|meta-data|validate-all|reload-agent) #REQUIRED>
<!ATTLIST parameter reloadable (0|1) "0">
]>
<resource-agent name="iscsi-ha" version="{version}">
<version>1.1</version>
<longdesc lang="en">
Serves replicated DRBD resources as iSCSI targets (tgtd) behind floating addresses, as a
promotable clone. Promoted: every resource of the instance is DRBD Primary, its target is
serving and every address in front of it is held on this node. Unpromoted: DRBD Secondary,
no target, no address. Promote and demote run the same ordered plans, state machine and
backends as the iscsi-ha daemon (DRBD over generic netlink, tgtd over its management socket,
addresses over rtnetlink); no program is started. Do not run the iscsi-ha daemon on a node
where Pacemaker runs this agent: Pacemaker is the authority. Promotion eligibility comes from
location constraints with role Promoted (the agent sets no promotion score).
</longdesc>
<shortdesc lang="en">DRBD + tgtd iSCSI target + floating address, one promotable resource</shortdesc>
<parameters>
<parameter name="config" unique="0" required="0" reloadable="1">
<longdesc lang="en">
The iscsi-ha configuration file (TOML): resources, targets, LUNs, addresses, timeouts. Its
role source is ignored here. Read afresh by every action. A missing file is "not installed"
(exit 5), an invalid one "not configured" (exit 6); stop then fails too (it cannot tell what
of this node to stop), notify never fails. Empty: the default path.
</longdesc>
<shortdesc lang="en">iscsi-ha configuration file</shortdesc>
<content type="string" default="{DEFAULT_CONFIG}"/>
</parameter>
<parameter name="resource" unique="1" required="0" reloadable="0">
<longdesc lang="en">
The DRBD resource of the configuration this instance drives, with its target and the
addresses in front of it; every address in front of it must serve this resource only.
Empty: every resource and address of the configuration, promoted together.
</longdesc>
<shortdesc lang="en">resource name in the configuration (default: all)</shortdesc>
<content type="string" default=""/>
</parameter>
</parameters>
<actions>
<action name="start" timeout="60s"/>
<action name="stop" timeout="90s"/>
<action name="promote" timeout="90s"/>
<action name="demote" timeout="90s"/>
<action name="monitor" timeout="30s" interval="{MONITOR_PROMOTED}" role="Promoted" depth="0"/>
<action name="monitor" timeout="30s" interval="{MONITOR_UNPROMOTED}" role="Unpromoted" depth="0"/>
<action name="monitor" timeout="30s" interval="31s" depth="10"/>
<action name="notify" timeout="10s"/>
<action name="validate-all" timeout="10s"/>
<action name="reload-agent" timeout="10s"/>
<action name="meta-data" timeout="5s"/>
</actions>
</resource-agent>
"#
    )
}
