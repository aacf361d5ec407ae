//! The `tile` module through its public API: the C2SP tlog-tiles examples,
//! canonical paths, tile contents against the tree they come from, and
//! entry bundles.

use std::collections::BTreeSet;

use hermetic_tlog::merkle::{self, Hash, TreeError};
use hermetic_tlog::tile::{
    encode_entry_bundle, new_tiles, parse_entry_bundle, read_tile_data, tile_root, tiles_for_size,
    Tile, TileError, TileKind,
};

fn build(n: u64) -> Vec<Hash> {
    let mut stored = Vec::new();
    for i in 0..n {
        let new = merkle::stored_hashes(i, format!("entry {i}").as_bytes(), &stored).unwrap();
        stored.extend(new);
    }
    stored
}

fn summary(tiles: &[Tile]) -> Vec<(u8, usize, Vec<u16>)> {
    // Per level: the number of full tiles and the widths of partial ones.
    let mut out: Vec<(u8, usize, Vec<u16>)> = Vec::new();
    for t in tiles {
        let TileKind::Hashes { level } = t.kind else {
            panic!("entries in a hash tile list")
        };
        if out.last().map(|o| o.0) != Some(level) {
            out.push((level, 0, vec![]));
        }
        let o = out.last_mut().unwrap();
        if t.is_full() {
            o.1 += 1;
        } else {
            o.2.push(t.width);
        }
    }
    out
}

#[test]
fn spec_examples_of_tree_shapes() {
    // c2sp.org/tlog-tiles, "Partial Tiles": size 70,000 is 273 full level-0
    // tiles and one of width 112, one full level-1 tile and one of width
    // 17, one level-2 tile of width 1; size 256 is one full level-0 tile
    // and a level-1 tile of width 1.
    assert_eq!(
        summary(&tiles_for_size(70_000)),
        vec![(0, 273, vec![112]), (1, 1, vec![17]), (2, 0, vec![1])]
    );
    assert_eq!(
        summary(&tiles_for_size(256)),
        vec![(0, 1, vec![]), (1, 0, vec![1])]
    );
    assert_eq!(summary(&tiles_for_size(1)), vec![(0, 0, vec![1])]);
    assert!(tiles_for_size(0).is_empty());
}

#[test]
fn new_tiles_is_the_difference_of_two_sizes() {
    let sizes = [
        0u64, 1, 2, 255, 256, 257, 511, 512, 513, 65_535, 65_536, 65_537, 70_000,
    ];
    for &old in &sizes {
        for &new in &sizes {
            let got: BTreeSet<Tile> = new_tiles(old, new).into_iter().collect();
            let before: BTreeSet<Tile> = tiles_for_size(old).into_iter().collect();
            let after: BTreeSet<Tile> = tiles_for_size(new).into_iter().collect();
            if new <= old {
                assert!(got.is_empty());
            } else {
                let want: BTreeSet<Tile> = after.difference(&before).copied().collect();
                assert_eq!(got, want, "{old} -> {new}");
            }
        }
    }
}

#[test]
fn paths() {
    // c2sp.org/tlog-tiles, "Merkle Tree": index 1234067 is x001/x234/067.
    let t = Tile::hashes(0, 1_234_067, 256).unwrap();
    assert_eq!(t.path(), "tile/0/x001/x234/067");
    let t = Tile::hashes(3, 1_234_067, 1).unwrap();
    assert_eq!(t.path(), "tile/3/x001/x234/067.p/1");
    let t = Tile::entries(5, 200).unwrap();
    assert_eq!(t.path(), "tile/entries/005.p/200");
    assert_eq!(
        Tile::hashes(63, u64::MAX, 256).unwrap().path(),
        "tile/63/x018/x446/x744/x073/x709/x551/615"
    );
    for path in [
        "tile/0/000",
        "tile/0/000.p/1",
        "tile/0/000.p/255",
        "tile/63/999",
        "tile/1/x001/000",
        "tile/entries/x999/999.p/7",
        "tile/63/x018/x446/x744/x073/x709/x551/615",
    ] {
        let t: Tile = path.parse().unwrap();
        assert_eq!(t.path(), path);
    }
    let bad: &[(&str, TileError)] = &[
        ("", TileError::MalformedPath),
        ("tile/0/", TileError::MalformedPath),
        ("/tile/0/000", TileError::MalformedPath),
        ("tile//000", TileError::MalformedPath),
        ("tile/00/000", TileError::MalformedPath),
        ("tile/+1/000", TileError::MalformedPath),
        ("tile/64/000", TileError::LevelOutOfRange),
        ("tile/999999999999999999999/000", TileError::MalformedPath),
        ("tile/data/000", TileError::MalformedPath),
        ("tile/0/0", TileError::MalformedPath),
        ("tile/0/0000", TileError::MalformedPath),
        ("tile/0/x000/001", TileError::MalformedPath),
        ("tile/0/001/002", TileError::MalformedPath),
        ("tile/0/x001", TileError::MalformedPath),
        ("tile/0/x1/002", TileError::MalformedPath),
        ("tile/0/000/", TileError::MalformedPath),
        ("tile/0/00a", TileError::MalformedPath),
        ("tile/0/000.p/0", TileError::WidthOutOfRange),
        ("tile/0/000.p/256", TileError::WidthOutOfRange),
        ("tile/0/000.p/01", TileError::MalformedPath),
        ("tile/0/000.p/", TileError::MalformedPath),
        ("tile/0/000.p", TileError::MalformedPath),
        (
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            TileError::MalformedPath,
        ),
        (
            "tile/0/x001/x018/x446/x744/x073/x709/x551/615",
            TileError::MalformedPath,
        ),
    ];
    for (path, want) in bad {
        assert_eq!(path.parse::<Tile>(), Err(*want), "{path}");
    }
    assert_eq!(Tile::hashes(64, 0, 1), Err(TileError::LevelOutOfRange));
    assert_eq!(Tile::hashes(0, 0, 0), Err(TileError::WidthOutOfRange));
    assert_eq!(Tile::entries(0, 257), Err(TileError::WidthOutOfRange));
}

#[test]
fn tile_contents_rebuild_the_tree() {
    let size = 70_000u64;
    let stored = build(size);
    let tiles = tiles_for_size(size);
    let data: Vec<(Tile, Vec<u8>)> = tiles
        .iter()
        .map(|t| (*t, read_tile_data(t, &stored).unwrap()))
        .collect();
    for (t, d) in &data {
        assert_eq!(d.len(), usize::from(t.width) * 32);
    }
    // Level 0 holds the leaf hashes.
    let (t0, d0) = &data[0];
    assert_eq!(t0.n, 0);
    assert_eq!(&d0[..32], merkle::record_hash(b"entry 0").as_ref());
    assert_eq!(&d0[32 * 255..], merkle::record_hash(b"entry 255").as_ref());
    // Each hash at level 1 is the root of the level-0 tile below it.
    let level1_full = data
        .iter()
        .find(|(t, _)| t.kind == TileKind::Hashes { level: 1 } && t.is_full())
        .unwrap();
    for (t, d) in data
        .iter()
        .filter(|(t, _)| t.kind == TileKind::Hashes { level: 0 } && t.is_full() && t.n < 256)
    {
        let i = t.n as usize * 32;
        assert_eq!(tile_root(d).unwrap().as_ref(), &level1_full.1[i..i + 32]);
    }
    // The full level-1 tile spans the first 65,536 leaves.
    assert_eq!(
        tile_root(&level1_full.1).unwrap(),
        merkle::tree_hash(65_536, &stored).unwrap()
    );
    // The level-2 tile of width 1 holds that same hash.
    let level2 = data
        .iter()
        .find(|(t, _)| t.kind == TileKind::Hashes { level: 2 })
        .unwrap();
    assert_eq!(
        &level2.1[..],
        merkle::tree_hash(65_536, &stored).unwrap().as_ref()
    );
    assert_eq!(tile_root(&level2.1), None);
}

#[test]
fn tiles_outside_the_tree_are_refused() {
    let stored = build(300);
    assert!(matches!(
        read_tile_data(&Tile::hashes(0, 2, 1).unwrap(), &stored),
        Err(TreeError::Read(_))
    ));
    for t in [
        Tile::hashes(0, u64::MAX, 256).unwrap(),
        Tile::hashes(8, 0, 1).unwrap(),
        Tile::hashes(63, 0, 1).unwrap(),
        Tile::hashes(7, 1 << 40, 256).unwrap(),
    ] {
        assert!(
            matches!(read_tile_data(&t, &stored), Err(TreeError::TooLarge { .. })),
            "{t}"
        );
    }
}

#[test]
fn entry_bundles() {
    let entries: Vec<Vec<u8>> = vec![b"".to_vec(), b"a".to_vec(), vec![7u8; 65_535]];
    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    let bundle = encode_entry_bundle(&refs).unwrap();
    assert_eq!(&bundle[..5], &[0, 0, 0, 1, b'a']);
    assert_eq!(parse_entry_bundle(&bundle).unwrap(), refs);
    assert_eq!(parse_entry_bundle(&[]).unwrap(), Vec::<&[u8]>::new());
    assert_eq!(
        encode_entry_bundle(&[&vec![0u8; 65_536]]),
        Err(TileError::EntryTooLarge { len: 65_536 })
    );
    // (Cut after 2 bytes it is a valid bundle of one empty entry.)
    for cut in [1, 3, 4, bundle.len() - 1] {
        assert_eq!(
            parse_entry_bundle(&bundle[..cut]),
            Err(TileError::TruncatedBundle),
            "{cut}"
        );
    }
}
