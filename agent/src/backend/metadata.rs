//! Manage mode after a crash of a Primary: DRBD refuses to attach a disk whose activity log was
//! never applied (165 `ERR_MD_UNCLEAN`). `drbdadm up` runs `drbdmeta … apply-al` before every
//! attach for that; the agent replays the log itself ([`drbd_md::apply_al`]) only when DRBD
//! refused, then attaches again (docs/drbd-metadata.md).

use std::future::Future;
use std::path::Path;

use drbd_nl::{DrbdError, RetCode};
use tracing::warn;

use crate::error::BackendError;

/// Runs `request`, the `attach` of `disk` (with DRBD 9, any request of a bring-up: only attach
/// reads the metadata); when DRBD refuses the disk as unclean (165 `ERR_MD_UNCLEAN`), replays
/// its activity log ([`replay_activity_log`]) and runs `request` once more.
///
/// # Errors
/// DRBD's refusal other than 165, as the backends map it; the replay's error; a refusal of the
/// second request as [`BackendError::Failed`] saying the log was replayed before it.
pub(crate) async fn replaying_unclean<T, Fut>(
    resource: &str,
    minor: u32,
    disk: &Path,
    mut request: impl FnMut() -> Fut,
) -> Result<T, BackendError>
where
    Fut: Future<Output = Result<T, DrbdError>>,
{
    match request().await {
        Err(e) if e.ret_code() == Some(RetCode::MdUnclean) => {
            replay_activity_log(resource, minor, disk).await?;
            request().await.map_err(|e| {
                BackendError::Failed(format!(
                    "{resource}: DRBD refused {} after its activity log was replayed: {e}",
                    disk.display()
                ))
            })
        }
        r => r.map_err(super::drbd::err),
    }
}

/// Replays the activity log of `disk`, the backing disk of `resource`'s `minor`, into its
/// bitmap: the extents the log names as hot are marked out of sync (the next resync with the
/// peer rewrites them) and the metadata is marked clean. Runs on tokio's blocking pool (direct
/// I/O on the disk). The disk is opened `O_EXCL`: a disk held exclusively (attached to DRBD,
/// mounted, in md or device-mapper, opened `O_EXCL` by another program) is never touched
/// ([`drbd_md::MdError::Busy`]); a plain opener is not kept out.
///
/// # Errors
/// [`BackendError::Failed`] with drbd-md's reason (busy disk, no or damaged metadata, an I/O
/// error): the attach is not retried and the resource stays down, as after `drbdadm up` failing.
async fn replay_activity_log(resource: &str, minor: u32, disk: &Path) -> Result<(), BackendError> {
    let path = disk.to_path_buf();
    let report = tokio::task::spawn_blocking(move || drbd_md::apply_al(&path))
        .await
        .map_err(|e| BackendError::Failed(format!("{resource}: activity log replay: {e}")))?
        .map_err(|e| {
            BackendError::Failed(format!(
                "{resource}: DRBD refused {} (unclean metadata after a crash) and its activity \
                 log could not be replayed: {e}",
                disk.display()
            ))
        })?;
    let what = if report.applied {
        "the extents it names as hot (writes in flight at the crash) are marked out of sync and \
         resync from the peer"
    } else {
        "nothing to mark (the node was not Primary, or the log held no update); the log is \
         re-initialized and the metadata marked clean"
    };
    warn!(
        resource,
        minor,
        disk = %disk.display(),
        format = %report.format,
        was_primary = report.primary_ind,
        applied = report.applied,
        hot_extents = report.hot_extents.len(),
        out_of_sync_kib = report.additional_kib(),
        extents_beyond_bitmap = report.extents_beyond_bitmap,
        corrupt_transactions = report.corrupt_transactions,
        log_problem_ignored = report.al_problem_ignored.map(|p| p.to_string()),
        "activity log replayed: DRBD refused the metadata as unclean (a crash, or DRBD stopped without a clean detach); {what}"
    );
    Ok(())
}
