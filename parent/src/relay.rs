//! Moving TLS records between the enclave and its destination, record by
//! record, with an idle timeout shared by both directions.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hermetic_transport::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::record::{check_header, RecordError, HEADER_LEN, MAX_RECORD_PAYLOAD};
use crate::Config;

/// Bytes and records relayed in one direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub bytes: u64,
    pub records: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides closed at record boundaries.
    Finished,
    Idle,
    NotTls(RecordError),
    TooManyBytes,
    /// A side closed in the middle of a record.
    Truncated,
    Io(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Finished => f.write_str("finished"),
            CloseReason::Idle => f.write_str("idle timeout"),
            CloseReason::NotTls(e) => write!(f, "refused: {e}"),
            CloseReason::TooManyBytes => f.write_str("refused: connection byte limit"),
            CloseReason::Truncated => f.write_str("closed mid-record"),
            CloseReason::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

/// The capture file: for each relayed record, `>` (enclave → destination)
/// or `<` (destination → enclave), then the record bytes as relayed. A
/// PostgreSQL destination's connection begins with `>` and the 8-byte
/// SSLRequest, then `<` and the one byte `S` ([`crate::postgres`]).
pub struct Capture {
    file: Mutex<File>,
}

impl Capture {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Capture {
            file: Mutex::new(File::create(path)?),
        })
    }

    pub(crate) fn write(&self, direction: u8, record: &[u8]) {
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(&[direction]).and_then(|_| f.write_all(record));
        }
    }
}

/// Time of the last relayed record, in ms since the relay started.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

struct Pump<'a> {
    cfg: &'a Config,
    activity: &'a Activity,
    capture: Option<&'a Capture>,
    direction: u8,
    counts: Counts,
}

impl Pump<'_> {
    /// Relays records until the reader closes at a record boundary.
    async fn run<R, W>(&mut self, mut from: R, mut to: W) -> Result<(), CloseReason>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let max = self.cfg.max_record.min(MAX_RECORD_PAYLOAD);
        let mut buf = vec![0u8; HEADER_LEN + max];
        loop {
            let mut header = [0u8; HEADER_LEN];
            let mut got = 0;
            while got < HEADER_LEN {
                let n = from.read(&mut header[got..]).await.map_err(io)?;
                if n == 0 {
                    if got == 0 {
                        let _ = to.shutdown().await;
                        return Ok(());
                    }
                    return Err(CloseReason::Truncated);
                }
                got += n;
            }
            let len = check_header(&header, max).map_err(CloseReason::NotTls)?;
            let total = HEADER_LEN + len;
            if self.counts.bytes + total as u64 > self.cfg.max_connection_bytes {
                return Err(CloseReason::TooManyBytes);
            }
            buf[..HEADER_LEN].copy_from_slice(&header);
            from.read_exact(&mut buf[HEADER_LEN..total])
                .await
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        CloseReason::Truncated
                    } else {
                        io(e)
                    }
                })?;
            match to.write_all(&buf[..total]).await.and(to.flush().await) {
                Ok(()) => {}
                // The receiving side already closed (e.g. after TLS
                // close_notify): nothing more to relay this way.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return Ok(())
                }
                Err(e) => return Err(io(e)),
            }
            self.counts.bytes += total as u64;
            self.counts.records += 1;
            self.activity.touch();
            if let Some(c) = self.capture {
                c.write(self.direction, &buf[..total]);
            }
        }
    }
}

fn io(e: std::io::Error) -> CloseReason {
    CloseReason::Io(e.to_string())
}

/// Relays until both directions finish, one fails, or the link is idle.
pub(crate) async fn relay(
    enclave: Stream,
    upstream: Stream,
    cfg: &Config,
    capture: Option<&Capture>,
) -> (Counts, Counts, CloseReason) {
    let activity = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let (er, ew) = tokio::io::split(enclave);
    let (ur, uw) = tokio::io::split(upstream);
    let mut up = Pump {
        cfg,
        activity: &activity,
        capture,
        direction: b'>',
        counts: Counts::default(),
    };
    let mut down = Pump {
        cfg,
        activity: &activity,
        capture,
        direction: b'<',
        counts: Counts::default(),
    };
    let watchdog = async {
        let tick = (cfg.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if activity.idle_for() >= cfg.idle_timeout {
                return CloseReason::Idle;
            }
        }
    };
    let reason = tokio::select! {
        r = async { tokio::try_join!(up.run(er, uw), down.run(ur, ew)) } => match r {
            Ok(_) => CloseReason::Finished,
            Err(e) => e,
        },
        r = watchdog => r,
    };
    (up.counts, down.counts, reason)
}
