//! The pure decoders on captured bytes (`tests/data/`, see `captured.rs`): superblock fields and
//! re-encoding, transaction checks, replay with stripes.

use std::path::Path;

use drbd_md::{
    flags, replay_al, AlProblem, Format, MdError, Superblock, Transaction, AL_TR_INITIALIZED,
    MAGIC_08, MAGIC_09, MAGIC_84_UNCLEAN,
};

const SB: usize = 40960 - 4096;
const AL: usize = SB - 32768;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn v08_superblock_as_the_84_kernel_left_it() {
    let t = data("v08-unclean.md");
    let sb = Superblock::decode(&t[SB..]).unwrap();
    assert_eq!(sb.format, Format::V08);
    assert_eq!(sb.magic, MAGIC_84_UNCLEAN);
    assert!(sb.flags & flags::PRIMARY_IND != 0 && sb.flags & flags::AL_CLEAN == 0);
    assert!(!sb.is_clean());
    assert_eq!((sb.al_stripes, sb.al_stripe_size_4k), (1, 8));
    assert_eq!(
        (sb.md_size_sect, sb.al_offset, sb.bm_offset),
        (80, -64, -72)
    );
    assert_eq!((sb.bm_bytes_per_bit, sb.max_peers), (4096, 1));
    assert_eq!(sb.effective_size, 32688);
    assert_eq!((sb.history_uuids.len(), sb.peers.len()), (2, 1));
    let l = sb.internal_layout(16 << 20).unwrap();
    assert_eq!(
        (
            l.md_offset,
            l.al_offset,
            l.al_bytes,
            l.bm_offset,
            l.bm_bytes
        ),
        (16773120, 16740352, 32768, 16736256, 4096)
    );

    let applied = Superblock::decode(&data("v08-drbdmeta-applied.md")[SB..]).unwrap();
    assert_eq!(applied.magic, MAGIC_08);
    assert!(applied.is_clean());
    assert_eq!(
        applied.flags,
        sb.flags | flags::AL_CLEAN,
        "only MDF_AL_CLEAN added"
    );
}

#[test]
fn v09_superblock_as_drbd9_left_it() {
    let t = data("v09-unclean.md");
    let sb = Superblock::decode(&t[SB..]).unwrap();
    assert_eq!((sb.format, sb.magic), (Format::V09, MAGIC_09));
    assert!(sb.flags & flags::PRIMARY_IND != 0 && !sb.is_clean());
    assert_eq!((sb.max_peers, sb.node_id), (1, 0));
    assert_eq!((sb.peers.len(), sb.history_uuids.len()), (32, 32));
    assert_eq!(sb.peers[1].bitmap_index, 0, "node 1 uses bitmap slot 0");
}

#[test]
fn drbdmeta_written_superblocks_encode_to_the_same_bytes() {
    for f in ["v08-drbdmeta-applied.md", "v09-drbdmeta-applied.md"] {
        let t = data(f);
        let sb = Superblock::decode(&t[SB..]).unwrap();
        assert_eq!(sb.encode().as_slice(), &t[SB..], "{f}");
    }
}

#[test]
fn superblock_errors_name_the_field() {
    assert!(matches!(
        Superblock::decode(&[0; 100]),
        Err(MdError::Truncated {
            len: 100,
            need: 4096,
            ..
        })
    ));
    assert!(matches!(
        Superblock::decode(&[0; 4096]),
        Err(MdError::NoMetadata {
            offset: 0,
            magic: 0
        })
    ));
    let mut b = data("v08-unclean.md")[SB..].to_vec();
    b[60..64].copy_from_slice(&0x8374_026au32.to_be_bytes()); // DRBD_MD_MAGIC_07
    assert!(matches!(
        Superblock::decode(&b),
        Err(MdError::Unsupported { offset: 60, .. })
    ));
    let mut b = data("v08-unclean.md")[SB..].to_vec();
    b[80..84].copy_from_slice(&5000u32.to_be_bytes());
    match Superblock::decode(&b) {
        Err(MdError::Invalid {
            offset: 80,
            field: "bm_bytes_per_bit",
            value,
            ..
        }) => {
            assert_eq!(value, "5000")
        }
        other => panic!("{other:?}"),
    }
    let mut b = data("v09-unclean.md")[SB..].to_vec();
    b[92..96].copy_from_slice(&40u32.to_be_bytes());
    assert!(matches!(
        Superblock::decode(&b),
        Err(MdError::Invalid {
            offset: 92,
            field: "node_id",
            ..
        })
    ));
    // bm_offset must leave room for the whole device's bitmap.
    let sb = Superblock::decode(&data("v08-unclean.md")[SB..]).unwrap();
    assert!(matches!(
        sb.internal_layout(1 << 30),
        Err(MdError::Invalid {
            field: "bm_offset",
            ..
        })
    ));
    assert!(matches!(
        sb.internal_layout(4096),
        Err(MdError::TooSmall { .. })
    ));
}

#[test]
fn transactions_are_checked_by_magic_and_crc32c() {
    let t = data("v08-unclean.md");
    let tr = Transaction::decode(&t[AL..]).unwrap();
    assert_eq!(tr.transaction_type, drbd_md::AL_TR_UPDATE);
    assert_eq!(tr.context_size, 1237, "al-extents");
    let init = Transaction::decode(&data("v08-drbdmeta-applied.md")[AL..]).unwrap();
    assert_eq!(init.transaction_type, AL_TR_INITIALIZED);

    let mut b = t[AL..AL + 4096].to_vec();
    b[4095] ^= 1;
    assert!(matches!(
        Transaction::decode(&b),
        Err(MdError::Invalid {
            offset: 8,
            field: "crc32c",
            ..
        })
    ));
    b[0] = 0;
    assert!(matches!(
        Transaction::decode(&b),
        Err(MdError::Invalid {
            offset: 0,
            field: "magic",
            ..
        })
    ));
    assert!(matches!(
        Transaction::decode(&b[..4095]),
        Err(MdError::Truncated { .. })
    ));
}

#[test]
fn replay_finds_the_hot_extents() {
    for v in ["v08", "v09"] {
        let t = data(&format!("{v}-unclean.md"));
        let r = replay_al(&t[AL..SB], 1, 8).unwrap();
        assert_eq!(r.hot_extents, [0, 1, 3], "{v}");
        assert_eq!((r.slots, r.valid, r.corrupt), (8, 8, 0));
        assert!(r.updates > 0 && !r.is_initialized_only());
        let clean = data(&format!("{v}-drbdmeta-applied.md"));
        let r = replay_al(&clean[AL..SB], 1, 8).unwrap();
        assert!(r.is_initialized_only() && r.hot_extents.is_empty());
    }
}

/// Transaction `b` of the ring lives in stripe `b % stripes`, block `b / stripes` of it
/// (drbdmeta `al_tr_number_to_on_disk_slot`): the same log laid out as 2 stripes of 4 replays
/// the same.
#[test]
fn replay_follows_the_stripes() {
    let t = data("v08-unclean.md");
    let al = &t[AL..SB];
    let mut striped = vec![0u8; al.len()];
    for b in 0..8 {
        let o = (b % 2) * 4 + b / 2;
        striped[o * 4096..(o + 1) * 4096].copy_from_slice(&al[b * 4096..(b + 1) * 4096]);
    }
    assert_eq!(
        replay_al(&striped, 2, 4).unwrap().hot_extents,
        replay_al(al, 1, 8).unwrap().hot_extents
    );
    assert_ne!(
        replay_al(&striped, 1, 8).unwrap().hot_extents,
        [0, 1, 3],
        "read unstriped, the order breaks"
    );
}

#[test]
fn replay_errors() {
    assert!(matches!(
        replay_al(&[0; 4096 * 8], 1, 8),
        Err(MdError::ActivityLog {
            problem: AlProblem::NoValidTransaction { slots: 8 },
            ..
        })
    ));
    // Initialized blocks and two corrupt ones: no update left.
    let mut al = data("v08-drbdmeta-applied.md")[AL..SB].to_vec();
    al[4096 * 3] = 0;
    al[4096 * 5] = 0;
    assert!(matches!(
        replay_al(&al, 1, 8),
        Err(MdError::ActivityLog {
            problem: AlProblem::NoValidUpdate {
                slots: 8,
                corrupt: 2
            },
            ..
        })
    ));
    // Only the first one corrupt: fine (a torn first write).
    let mut al = data("v08-drbdmeta-applied.md")[AL..SB].to_vec();
    al[0] = 0;
    assert_eq!(replay_al(&al, 1, 8).unwrap().corrupt, 1);
    assert!(matches!(
        replay_al(&al, 1, 9),
        Err(MdError::Truncated { .. })
    ));
    assert!(matches!(replay_al(&al, 0, 8), Err(MdError::Invalid { .. })));
}

/// `apply_al` re-initializes the log block 0 last. Every state a power loss can leave during
/// that rewrite (blocks 1..k initialized, block k+1 torn, the rest still the crash's log; at the
/// end every block initialized but a torn block 0) still replays: a rerun is never refused. The
/// bitmap was applied before, so a partial replay only marks again what is marked.
#[test]
fn every_state_of_the_log_rewrite_replays() {
    let crashed = data("v08-unclean.md")[AL..SB].to_vec();
    let clean = data("v08-drbdmeta-applied.md")[AL..SB].to_vec();
    let torn = |al: &mut Vec<u8>, b: usize| al[4096 * b + 100] ^= 0x40;
    assert_ne!(crashed[..4096], clean[..4096], "block 0 holds an update");
    for k in 1..8 {
        let mut al = crashed.clone();
        al[4096..4096 * k].copy_from_slice(&clean[4096..4096 * k]);
        torn(&mut al, k);
        let r = replay_al(&al, 1, 8).unwrap_or_else(|e| panic!("blocks 1..{k} written: {e}"));
        assert!(!r.is_initialized_only(), "block 0 still an update");
    }
    let mut al = clean.clone();
    torn(&mut al, 0);
    let r = replay_al(&al, 1, 8).unwrap();
    assert!(r.is_initialized_only() && r.corrupt == 1);
    // Written in one go instead, a tear of the last update block (here block 3, after the
    // updates of blocks 0..2 were overwritten) leaves nothing to replay: refused.
    let mut al = crashed.clone();
    al[..4096 * 3].copy_from_slice(&clean[..4096 * 3]);
    al[4096 * 4..].copy_from_slice(&clean[4096 * 4..]);
    torn(&mut al, 3);
    assert!(replay_al(&al, 1, 8).is_err());
}
