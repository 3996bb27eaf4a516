//! Write caching as an initiator sees it, on the host (no lab): a private tgtd, one LUN served through
//! tgt-ipc in each cache mode, the caching mode page (08h) read through the portal with MODE SENSE(6)
//! and (10) by libiscsi (`lab::iscsi`), and the backing-store flags read back with `show`. Needs root
//! and tgtd (`docs/write-cache.md` has the tgt facts).

#[path = "../../tgt-ipc/tests/common/mod.rs"]
mod tgtd;

use lab::iscsi::{CachingPage, Session};
use tgt_ipc::{Acl, CacheMode, LunBacking, ServeLun, ServeOutcome, ServeSpec, Served};

const INITIATOR: &str = "iqn.2026-11.test:client";

fn spec(t: &tgtd::Tgtd, tid: i32, cache: CacheMode) -> ServeSpec {
    ServeSpec {
        tid,
        name: format!("iqn.2026-11.test.iscsi-ha:{cache}"),
        luns: vec![ServeLun {
            lun: 1,
            backing: LunBacking::new(t.backing_file(&format!("{cache}.img"), 8 << 20)),
            identity: tgtd::r0_identity(),
            cache,
        }],
        accounts: Vec::new(),
        acls: vec![Acl::address("127.0.0.1").expect("acl")],
    }
}

/// Logs in, reads the caching page with MODE SENSE(6) and (10), writes one block without FUA.
fn initiator_view(url: String) -> Result<(CachingPage, CachingPage), lab::iscsi::IscsiError> {
    let mut s = Session::connect(&url, INITIATOR, 10, 2)?;
    let six = s.caching_page(false)?;
    let ten = s.caching_page(true)?;
    s.write10(0, &[0xa5; lab::iscsi::BLOCK], false)?;
    s.logout()?;
    Ok((six, ten))
}

#[tokio::test]
async fn caching_page_matches_the_cache_mode() {
    if !tgtd::prereqs("caching_page_matches_the_cache_mode", &["tgtd"]) {
        return;
    }
    let t = tgtd::Tgtd::start().await;
    let c = &t.client;
    let modes = [
        (1, CacheMode::WriteThrough, false, "sync"),
        (2, CacheMode::WriteBack, true, ""),
    ];
    for (tid, cache, wce, flags) in modes {
        let s = spec(&t, tid, cache);
        assert_eq!(c.serve(&s).await.expect("serve"), ServeOutcome::Created);
        assert_eq!(c.served(&s).await.expect("served"), Served::Serving);
        let shown = c.target(tid).await.expect("show").expect("target shown");
        let lun = shown.lun(1).expect("LUN 1 shown");
        assert_eq!(lun.backing_store_flags, flags, "{cache}");

        let url = t.url(&s.name, 1);
        let (six, ten) = tokio::task::spawn_blocking(move || initiator_view(url))
            .await
            .expect("initiator thread")
            .unwrap_or_else(|e| panic!("{cache}: initiator: {e}"));
        assert_eq!(six.wce, wce, "{cache}: MODE SENSE(6) caching page {six:?}");
        assert_eq!(ten.wce, wce, "{cache}: MODE SENSE(10) caching page {ten:?}");
        assert!(!six.rcd && !ten.rcd, "{cache}: read cache stays on");

        // the same target asked for in the other mode differs (through its backing-store flags)
        let mut other = s.clone();
        other.luns[0].cache = match cache {
            CacheMode::WriteThrough => CacheMode::WriteBack,
            _ => CacheMode::WriteThrough,
        };
        match c.served(&other).await.expect("served") {
            Served::Different(d) => {
                assert!(d.iter().any(|d| d.contains("bsoflags")), "{d:?}")
            }
            v => panic!("{cache}: other mode reported {v:?}"),
        }
    }
}
