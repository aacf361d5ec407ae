//! C2SP tiled logs (<https://c2sp.org/tlog-tiles>): tile coordinates and
//! paths (`tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`), the hashes a
//! tile holds, which tiles a tree of a given size consists of, and entry
//! bundles. Tiles have height 8 (256 hashes); Go's `sumdb/tlog` tiles of
//! height 8 hold the same hashes under `tile/8/<L>/...`.

use std::fmt;
use std::str::FromStr;

use crate::merkle::{stored_hash_index, Hash, HashReader, TreeError, HASH_SIZE, MAX_TREE_SIZE};

/// Levels of the Merkle tree one tile spans.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// The highest tile level a path may name (c2sp.org/tlog-tiles, "Merkle Tree").
pub const MAX_LEVEL: u8 = 63;

/// What a tile holds: hashes at a tile level, or log entries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum TileKind {
    /// Level `l` holds MTHs of subtrees of 256^l leaves.
    Hashes { level: u8 },
    /// An entry bundle, beside the level-0 tile of the same index.
    Entries,
}

/// One tile: its kind, its index `n` within the level, and its width (256
/// for a full tile, 1..=255 for a partial one).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Tile {
    pub kind: TileKind,
    pub n: u64,
    pub width: u16,
}

/// A path that is not a canonical tile path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("not a canonical tile path")]
    MalformedPath,
    #[error("tile level above 63")]
    LevelOutOfRange,
    #[error("tile width is not 1..=256")]
    WidthOutOfRange,
    #[error("entry of {len} bytes does not fit a uint16 length prefix")]
    EntryTooLarge { len: usize },
    #[error("entry bundle is truncated")]
    TruncatedBundle,
}

impl Tile {
    /// A hash tile; refuses a level above 63 or a width outside 1..=256.
    pub fn hashes(level: u8, n: u64, width: u16) -> Result<Tile, TileError> {
        if level > MAX_LEVEL {
            return Err(TileError::LevelOutOfRange);
        }
        Tile::new(TileKind::Hashes { level }, n, width)
    }

    /// An entry bundle; refuses a width outside 1..=256.
    pub fn entries(n: u64, width: u16) -> Result<Tile, TileError> {
        Tile::new(TileKind::Entries, n, width)
    }

    fn new(kind: TileKind, n: u64, width: u16) -> Result<Tile, TileError> {
        if width == 0 || u64::from(width) > TILE_WIDTH {
            return Err(TileError::WidthOutOfRange);
        }
        Ok(Tile { kind, n, width })
    }

    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The level's number for hash tiles, 0 for entry bundles (which sit
    /// beside level 0).
    fn level(&self) -> u32 {
        match self.kind {
            TileKind::Hashes { level } => u32::from(level),
            TileKind::Entries => 0,
        }
    }

    /// `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, N in 3-digit
    /// groups, all but the last prefixed `x` (c2sp.org/tlog-tiles; Go's
    /// `Tile.Path`).
    pub fn path(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TileKind::Hashes { level } => write!(f, "tile/{level}/")?,
            TileKind::Entries => f.write_str("tile/entries/")?,
        }
        let mut groups = Vec::new();
        let mut n = self.n;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().rev().enumerate() {
            if i + 1 < groups.len() {
                write!(f, "x{g:03}/")?;
            } else {
                write!(f, "{g:03}")?;
            }
        }
        if !self.is_full() {
            write!(f, ".p/{}", self.width)?;
        }
        Ok(())
    }
}

/// A decimal with no sign and no leading zero.
fn canonical_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

impl FromStr for Tile {
    type Err = TileError;

    /// Parses a tile path, accepting only the canonical spelling (the one
    /// [`Tile::path`] writes).
    fn from_str(path: &str) -> Result<Tile, TileError> {
        let rest = path.strip_prefix("tile/").ok_or(TileError::MalformedPath)?;
        let (level, rest) = rest.split_once('/').ok_or(TileError::MalformedPath)?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            let l = canonical_decimal(level).ok_or(TileError::MalformedPath)?;
            if l > u64::from(MAX_LEVEL) {
                return Err(TileError::LevelOutOfRange);
            }
            TileKind::Hashes { level: l as u8 }
        };
        let (index, width) = match rest.split_once(".p/") {
            Some((index, w)) => {
                let w = canonical_decimal(w).ok_or(TileError::MalformedPath)?;
                if w == 0 || w >= TILE_WIDTH {
                    return Err(TileError::WidthOutOfRange);
                }
                (index, w as u16)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let groups: Vec<&str> = index.split('/').collect();
        let mut n: u64 = 0;
        for (i, g) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() {
                g.strip_prefix('x').ok_or(TileError::MalformedPath)?
            } else {
                g
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TileError::MalformedPath);
            }
            let d: u64 = digits.parse().map_err(|_| TileError::MalformedPath)?;
            n = n
                .checked_mul(1000)
                .and_then(|n| n.checked_add(d))
                .ok_or(TileError::MalformedPath)?;
        }
        let tile = Tile::new(kind, n, width)?;
        // "x000/001" and the like name tile 1 too; only one spelling is valid.
        if tile.path() != path {
            return Err(TileError::MalformedPath);
        }
        Ok(tile)
    }
}

/// The hash tiles of a tree of `size` leaves: at each level the full tiles
/// and, if any hashes are left over, one partial tile
/// (c2sp.org/tlog-tiles, "Partial Tiles"). Entry bundles mirror level 0.
pub fn tiles_for_size(size: u64) -> Vec<Tile> {
    new_tiles(0, size)
}

/// The hash tiles a log publishes when it grows from `old` to `new` leaves:
/// the full tiles completed since `old` and the partial tiles of size
/// `new`. (Go's `tlog.NewTiles` also re-lists the partial tiles of `old`
/// and every width in between.) Empty when `new <= old`.
pub fn new_tiles(old: u64, new: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    if new <= old {
        return tiles;
    }
    for level in 0..=u32::from(MAX_LEVEL) {
        let shift = TILE_HEIGHT * level;
        if shift >= 64 || new >> shift == 0 {
            break;
        }
        // Hashes at this level: complete subtrees of 256^level leaves.
        let (old_hashes, new_hashes) = (old >> shift, new >> shift);
        let first_new_full = old_hashes >> TILE_HEIGHT;
        let full = new_hashes >> TILE_HEIGHT;
        for n in first_new_full..full {
            tiles.push(Tile {
                kind: TileKind::Hashes { level: level as u8 },
                n,
                width: TILE_WIDTH as u16,
            });
        }
        let width = new_hashes - (full << TILE_HEIGHT);
        if width > 0 && new_hashes != old_hashes {
            tiles.push(Tile {
                kind: TileKind::Hashes { level: level as u8 },
                n: full,
                width: width as u16,
            });
        }
    }
    tiles
}

/// The bytes of a hash tile: its `width` hashes, 32 bytes each
/// (c2sp.org/tlog-tiles, "Merkle Tree"; Go's `tlog.ReadTileData`), read in
/// one call from the stored hashes.
pub fn read_tile_data<R: HashReader + ?Sized>(
    tile: &Tile,
    r: &R,
) -> Result<Vec<u8>, TreeError<R::Error>> {
    let level = tile.level() * TILE_HEIGHT;
    // The hashes at this level in the largest tree this crate handles.
    let limit = MAX_TREE_SIZE.checked_shr(level).unwrap_or(0);
    let start = tile.n.checked_mul(TILE_WIDTH);
    let end = start.and_then(|s| s.checked_add(u64::from(tile.width)));
    let start = match (start, end) {
        (Some(start), Some(end)) if end <= limit => start,
        _ => {
            let leaves = end
                .unwrap_or(u64::MAX)
                .saturating_mul(1u64.checked_shl(level).unwrap_or(u64::MAX));
            return Err(TreeError::TooLarge { size: leaves });
        }
    };
    let indexes: Vec<u64> = (0..u64::from(tile.width))
        .map(|i| stored_hash_index(level, start + i))
        .collect();
    let hashes = r.read_hashes(&indexes).map_err(TreeError::Read)?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::WrongCount {
            wanted: indexes.len(),
            got: hashes.len(),
        });
    }
    let mut out = Vec::with_capacity(hashes.len() * HASH_SIZE);
    for h in &hashes {
        out.extend_from_slice(h.as_ref());
    }
    Ok(out)
}

/// The MTH of a full tile's hashes: the hash its parent tile holds for it.
/// `None` unless `data` is exactly 256 hashes.
pub fn tile_root(data: &[u8]) -> Option<Hash> {
    if data.len() as u64 != TILE_WIDTH * HASH_SIZE as u64 {
        return None;
    }
    let mut level: Vec<Hash> = data
        .chunks_exact(HASH_SIZE)
        .map(|c| Hash(c.try_into().expect("32-byte chunk")))
        .collect();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|p| crate::merkle::node_hash(&p[0], &p[1]))
            .collect();
    }
    level.pop()
}

/// An entry bundle: each entry behind a big-endian uint16 length
/// (c2sp.org/tlog-tiles, "Log entries").
pub fn encode_entry_bundle(entries: &[&[u8]]) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLarge { len: e.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The entries of a bundle, refusing a truncated one.
pub fn parse_entry_bundle(mut bundle: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::new();
    while !bundle.is_empty() {
        let [a, b, rest @ ..] = bundle else {
            return Err(TileError::TruncatedBundle);
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        if rest.len() < len {
            return Err(TileError::TruncatedBundle);
        }
        let (entry, tail) = rest.split_at(len);
        entries.push(entry);
        bundle = tail;
    }
    Ok(entries)
}
