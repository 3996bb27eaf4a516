// Shared argument handling for the examples (not an example: in a subfolder, included with `#[path]`).
use tgt_ipc::TgtClient;

/// Takes `-C N` or `--socket PATH` off the front of `args`; honours `TGT_IPC_SOCKET` like tgtadm.
pub fn client(args: &mut Vec<String>) -> Result<TgtClient, Box<dyn std::error::Error>> {
    let mut port = 0u16;
    let mut path = None;
    while let Some(a) = args.first().cloned() {
        match a.as_str() {
            "-C" | "--control-port" if args.len() > 1 => {
                port = args[1].parse()?;
                args.drain(..2);
            }
            "--socket" if args.len() > 1 => {
                path = Some(args[1].clone());
                args.drain(..2);
            }
            _ => break,
        }
    }
    Ok(match (path, std::env::var_os("TGT_IPC_SOCKET")) {
        (Some(p), _) => TgtClient::at_path(p),
        (None, Some(base)) => TgtClient::with_base(base, port)?,
        (None, None) => TgtClient::control_port(port)?,
    })
}
