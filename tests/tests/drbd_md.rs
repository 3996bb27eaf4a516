//! 2 nodes, DRBD 8.4 and DRBD 9 (a lab each). Power loss of a Primary that was writing, then drbd-md's native apply-al
//! (`drbd_md::apply_al`) against the oracle `drbdmeta --force 0 v08 FILE internal apply-al` on
//! copies of the disk file on the host: byte-identical images. Then in the guest: the kernel
//! refuses the unclean disk (`ERR_MD_UNCLEAN`, 165), the example `drbd-md-apply-al` replays it
//! on the real block device (`O_EXCL | O_DIRECT`) with the same bytes as drbdmeta, the kernel
//! attaches it with the hot extents out of sync, and the example refuses the attached disk
//! (`Busy`).
//!
//! `DRBD_MD_CAPTURE=DIR` also writes the metadata tail (bitmap + activity log + superblock) of
//! the unclean disk and of drbdmeta's result to DIR (how `drbd-md/tests/data/v0[89]-*` were made).

mod common;

use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use drbd_md::Format;
use lab::bringup::{self, Resource};
use lab::drbd9::bringup as drbd9;
use lab::Node;

const EXAMPLE: &str = "drbd-md-apply-al";

/// One lab at a time: the two tests boot different labs (8.4 and 9).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn drbd84_power_loss_native_apply_al_matches_drbdmeta() {
    let _s = serial();
    let Some((_g, lab)) = common::lab() else {
        return;
    };
    let r = Resource::default();
    let (a, b) = (lab.node(0).expect("node a"), lab.node(1).expect("node b"));
    let run = || -> Result<()> {
        bringup::reset_lab(lab)?;
        bringup::drbd84_pair_up(a, b, &r)?;
        scenario(a, &r, Format::V08)
    };
    if let Err(e) = run() {
        eprintln!("{}", lab.logs_tail(30));
        let _ = bringup::reset_lab(lab);
        panic!("{e:#}");
    }
    bringup::reset_lab(lab).expect("reset after test");
}

/// The same on DRBD 9.3.3 (v09 metadata, one peer slot; the lab builds the module).
#[test]
fn drbd9_power_loss_native_apply_al_matches_drbdmeta() {
    if !lab::drbd9::require_lab9() {
        return;
    }
    let _g = serial();
    let lab = lab::drbd9::shared_lab().unwrap_or_else(|e| panic!("{e:#}"));
    let r = Resource::default();
    let (a, b) = (lab.node(0).expect("node a"), lab.node(1).expect("node b"));
    let reset = || -> Result<()> {
        drbd9::reset(a, &r)?;
        drbd9::reset(b, &r)
    };
    let run = || -> Result<()> {
        reset()?;
        drbd9::pair_up(a, b, &r)?;
        drbd9::primary(a, &r)?;
        scenario(a, &r, Format::V09)
    };
    if let Err(e) = run() {
        eprintln!("{}", lab.logs_tail(30));
        let _ = reset();
        panic!("{e:#}");
    }
    reset().expect("reset after test");
}

/// `a` is Primary on `r`: writes, power loss, both apply-als on the host, then the kernel.
fn scenario(a: &Node, r: &Resource, format: Format) -> Result<()> {
    let example = lab::host_bin(&format!("examples/{EXAMPLE}"));
    ensure!(
        example.exists(),
        "{} is not built: run `cargo build --workspace --bins --examples` first",
        example.display()
    );
    // Direct writes into extents 0, 1 and 3 (4 MiB each); extent 2 stays cold.
    a.run_ok(&format!(
        "for mib in 0 5 13; do dd if=/dev/urandom of={} bs=4096 count=4 seek=$((mib * 256)) \
         oflag=direct 2>/dev/null || exit 1; done",
        r.device()
    ))?;
    a.kill()?;

    let unclean = std::fs::read(a.disk()).context("read the disk file")?;
    let tmp = tempfile::tempdir()?;
    let (oracle, native) = (
        tmp.path().join("drbdmeta.img"),
        tmp.path().join("native.img"),
    );
    std::fs::write(&oracle, &unclean)?;
    std::fs::write(&native, &unclean)?;
    drbdmeta_apply_al(&oracle, format)?;
    let report = drbd_md::apply_al(&native).context("native apply-al")?;
    eprintln!("native apply-al: {report:?}");
    ensure!(
        report.format == format && report.primary_ind && !report.was_clean && report.applied,
        "expected unclean {format} metadata of a Primary, applied: {report:?}"
    );
    for e in [0, 1, 3] {
        ensure!(
            report.hot_extents.contains(&e),
            "extent {e} was written but is not hot: {report:?}"
        );
    }
    let want = std::fs::read(&oracle)?;
    ensure!(want != unclean, "drbdmeta changed nothing");
    same_bytes(
        "native apply-al on the host",
        &std::fs::read(&native)?,
        &want,
    )?;
    if let Some(dir) = std::env::var_os("DRBD_MD_CAPTURE") {
        capture(Path::new(&dir), format, &unclean, &want, &report)?;
    }

    // The kernel's view: the unclean disk is refused, the natively applied one attaches.
    a.boot()?;
    let (n, m, d) = (&r.name, r.minor, &r.disk);
    let (setup, new_resource) = match format {
        Format::V08 => ("drbdsetup-84", format!("new-resource {n}")),
        _ => ("drbdsetup", format!("new-resource {n} {}", a.index())),
    };
    let attach = format!("{setup} attach {m} {d} {d} internal");
    let o = a.run(&format!(
        "{setup} {new_resource} && {setup} new-minor {n} {m} 0 && {attach}"
    ))?;
    let said = format!("{}{}", o.stdout, o.stderr);
    ensure!(
        o.rc != 0 && said.contains("nclean"),
        "attach of the unclean disk: expected ERR_MD_UNCLEAN (165), got rc {}: {said}",
        o.rc
    );
    let o = a.run_ok(&format!("{} {d}", Node::guest_example(EXAMPLE)))?;
    eprintln!("in the guest: {}", o.stdout.trim());
    same_bytes(
        "native apply-al in the guest",
        &std::fs::read(a.disk())?,
        &want,
    )?;
    a.run_ok(&attach)?;
    if format == Format::V08 {
        let line = a.run_ok("cat /proc/drbd")?.stdout;
        let oos: u64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("oos:"))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no oos: in /proc/drbd:\n{line}"))?;
        ensure!(
            oos > 0 && oos <= report.additional_kib(),
            "attached with oos:{oos} KiB, the native apply-al marked {} KiB:\n{line}",
            report.additional_kib()
        );
    }
    let o = a.run(&format!("{} {d}", Node::guest_example(EXAMPLE)))?;
    ensure!(
        o.rc != 0 && o.stderr.contains("ERROR Busy"),
        "apply-al on the attached disk: expected Busy, got rc {}: {}{}",
        o.rc,
        o.stdout,
        o.stderr
    );
    Ok(())
}

/// The oracle, on the host: drbd-utils' drbdmeta on an image file (`--force`: not a block device).
fn drbdmeta_apply_al(image: &Path, format: Format) -> Result<()> {
    let out = Command::new("drbdmeta")
        .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
        .args(["--force", "0", &format.to_string()])
        .arg(image)
        .args(["internal", "apply-al"])
        .output()
        .context("run drbdmeta (drbd-utils)")?;
    eprintln!(
        "drbdmeta apply-al: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    ensure!(out.status.success(), "drbdmeta apply-al failed: {out:?}");
    Ok(())
}

fn same_bytes(what: &str, got: &[u8], want: &[u8]) -> Result<()> {
    if got.len() != want.len() {
        bail!(
            "{what}: {} bytes, drbdmeta's image {}",
            got.len(),
            want.len()
        );
    }
    if let Some(at) = got.iter().zip(want).position(|(g, w)| g != w) {
        bail!(
            "{what}: differs from drbdmeta's result at byte {at} (of {})",
            got.len()
        );
    }
    Ok(())
}

/// The metadata tail (from the bitmap to the end) of both images, and a note of the layout.
fn capture(
    dir: &Path,
    format: Format,
    unclean: &[u8],
    applied: &[u8],
    report: &drbd_md::ApplyAlReport,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let from = report.layout.bm_offset as usize;
    std::fs::write(dir.join(format!("{format}-unclean.md")), &unclean[from..])?;
    std::fs::write(
        dir.join(format!("{format}-drbdmeta-applied.md")),
        &applied[from..],
    )?;
    eprintln!(
        "captured {} bytes of metadata tail (device {} bytes) into {}",
        unclean.len() - from,
        unclean.len(),
        dir.display()
    );
    Ok(())
}
