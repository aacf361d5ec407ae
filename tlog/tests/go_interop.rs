//! hermetic-tlog against Go's reference implementations
//! (golang.org/x/mod/sumdb/note and sumdb/tlog), in both directions.
//!
//! `tests/go/main.go` is built offline from Debian's
//! golang-golang-x-mod-dev source (GOPATH=/usr/share/gocode,
//! GO111MODULE=off, GOPROXY=off) and answers a JSON batch of requests.
//! Without `go` or that source the tests print
//! `skipping: go reference not found` and pass, except under `CI=true`,
//! where they fail (`.ci/run` installs both).

use hermetic_testkit::go::GoRef;
use hermetic_tlog::checkpoint::Checkpoint;
use hermetic_tlog::merkle::{self, Hash};
use hermetic_tlog::note::{self, NoteError, Signer, VerifierKey};
use hermetic_tlog::tile::{new_tiles, read_tile_data, tiles_for_size, Tile, TileKind};
use serde_json::{json, Value};

/// The reference program (hermetic-testkit builds it once per process).
fn go_ref() -> Option<&'static GoRef> {
    GoRef::get(env!("CARGO_TARGET_TMPDIR"), "tlogref")
}

/// Runs a batch of requests through the Go program.
fn go(bin: &GoRef, requests: Value) -> Vec<Value> {
    bin.run(&requests)
}

fn go_one(bin: &GoRef, request: Value) -> Value {
    bin.run_one(request)
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_owned()
}

fn go_ok(v: &Value) -> &Value {
    assert!(v.get("error").is_none(), "go reference error: {v}");
    v
}

// ---------------------------------------------------------------- note --

#[test]
fn go_keys_and_notes_verify_in_rust_and_rust_signs_identically() {
    let Some(bin) = go_ref() else { return };
    let names = ["go.example/a", "go.example/b", "go.example/c"];
    let keys = go(
        bin,
        names
            .iter()
            .map(|n| json!({"op": "genkey", "name": n}))
            .collect(),
    );
    let mut signers = Vec::new();
    let mut verifiers = Vec::new();
    for (k, name) in keys.iter().zip(names) {
        let k = go_ok(k);
        let signer = Signer::from_private_key(&s(k, "skey")).unwrap();
        let vkey: VerifierKey = s(k, "vkey").parse().unwrap();
        assert_eq!(signer.name(), name);
        // Same key id and verifier key string as Go computed.
        assert_eq!(signer.verifier_key(), vkey);
        assert_eq!(signer.verifier_key().to_string(), s(k, "vkey"));
        assert_eq!(&*signer.private_key_string(), &s(k, "skey"));
        signers.push(signer);
        verifiers.push(vkey);
    }

    let text = "hermetic change v1\nsecret db-password\n\nversion 7 — ünïcödé\n";
    let skeys: Vec<String> = keys.iter().map(|k| s(k, "skey")).collect();
    let go_note = s(
        go_ok(&go_one(
            bin,
            json!({"op": "sign", "text": text, "skeys": skeys}),
        )),
        "note",
    );
    let opened = note::open(go_note.as_bytes(), &verifiers).unwrap();
    assert_eq!(opened.text, text);
    assert_eq!(opened.verified, verifiers);
    assert!(opened.unverified.is_empty());

    // Ed25519 is deterministic: the same signers in the same order give
    // Go's bytes exactly.
    let refs: Vec<&Signer> = signers.iter().collect();
    assert_eq!(note::sign(text, &refs).unwrap(), go_note);

    // Only one of the keys known: the others are listed as unverified.
    let one = note::open(go_note.as_bytes(), &verifiers[1..2]).unwrap();
    assert_eq!(one.verified, vec![verifiers[1].clone()]);
    assert_eq!(one.unverified.len(), 2);
}

#[test]
fn rust_keys_and_notes_verify_in_go() {
    let Some(bin) = go_ref() else { return };
    let signers: Vec<Signer> = (1..=4)
        .map(|i| Signer::generate(&format!("hermetic.example/owner-{i}")).unwrap())
        .collect();
    let vkeys: Vec<String> = signers
        .iter()
        .map(|s| s.verifier_key().to_string())
        .collect();
    let text = "hermetic change v1\nsecret api-token\nversion 2\n";
    let note = note::sign(text, &[&signers[0], &signers[1]]).unwrap();
    let note = note::add_signatures(note.as_bytes(), &[&signers[2], &signers[3]]).unwrap();

    let mut requests = vec![
        json!({"op": "open", "note": note, "vkeys": vkeys}),
        // Only two keys known to Go.
        json!({"op": "open", "note": note, "vkeys": &vkeys[1..3]}),
        // Tampered text.
        json!({"op": "open", "note": note.replacen("version 2", "version 3", 1), "vkeys": vkeys}),
    ];
    for signer in &signers {
        // Go reads our private key strings, and derives the same key from
        // the raw public key.
        requests.push(json!({"op": "sign", "text": text, "skeys": [*signer.private_key_string()]}));
        requests.push(json!({
            "op": "vkey_from_pub",
            "name": signer.name(),
            "pub": base64_encode(signer.verifier_key().public_key()),
        }));
    }
    let answers = go(bin, Value::Array(requests));

    let all = go_ok(&answers[0]);
    assert_eq!(s(all, "text"), text);
    let verified: Vec<(String, u32)> = all["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (s(v, "name"), v["hash"].as_u64().unwrap() as u32))
        .collect();
    let want: Vec<(String, u32)> = signers
        .iter()
        .map(|s| (s.name().to_owned(), s.key_id()))
        .collect();
    assert_eq!(verified, want);
    assert!(all.get("unverified").is_none());

    let two = go_ok(&answers[1]);
    assert_eq!(two["verified"].as_array().unwrap().len(), 2);
    assert_eq!(two["unverified"].as_array().unwrap().len(), 2);

    assert!(s(&answers[2], "error").starts_with("invalid signature for key"));

    for (i, signer) in signers.iter().enumerate() {
        let signed = s(go_ok(&answers[3 + 2 * i]), "note");
        assert_eq!(signed, note::sign(text, &[signer]).unwrap());
        assert_eq!(
            s(go_ok(&answers[4 + 2 * i]), "vkey"),
            signer.verifier_key().to_string()
        );
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn malformed_notes_are_refused_by_both() {
    let Some(bin) = go_ref() else { return };
    let signer = Signer::generate("both.example/k").unwrap();
    let vk = signer.verifier_key();
    let good = note::sign("line one\nline two\n", &[&signer]).unwrap();
    let line = good.lines().last().unwrap().to_owned();
    let b64 = line.rsplit(' ').next().unwrap().to_owned();
    let bad: Vec<String> = vec![
        good.replacen("one", "0ne", 1),                     // tampered text
        good.replacen("line one", "line\u{1}one", 1),       // control character
        good.replacen("line one", "line\tone", 1),          // tab
        good.replacen("line one", "line\rone", 1),          // carriage return
        good.trim_end().to_owned(),                         // no final newline
        good.replacen("\n\n", "\n", 1),                     // no blank line
        good.replacen('\u{2014}', "-", 1),                  // not an em dash
        good.replacen(&b64, &b64[..b64.len() - 4], 1),      // truncated signature
        good.replacen(&b64, &format!("{}!", &b64[1..]), 1), // bad base64
        good.replacen(&b64, "AAAAAA==", 1),                 // key id only
        good.replacen(&b64, "", 1),                         // no signature
        format!(
            "line one\n\n{}",
            line.replacen("both.example/k", "both example/k", 1)
        ) + "\n",
        format!("{good}{line}"), // trailing line without newline
        format!("line one\n\n{}", format!("{line}\n").repeat(101)), // 101 lines
        "line one\n\n".to_owned(), // no signature lines
    ];
    let answers = go(
        bin,
        bad.iter()
            .map(|n| json!({"op": "open", "note": n, "vkeys": [vk.to_string()]}))
            .collect(),
    );
    for (n, a) in bad.iter().zip(&answers) {
        assert!(a.get("error").is_some(), "Go accepted {n:?}");
        assert!(
            note::open(n.as_bytes(), std::slice::from_ref(&vk)).is_err(),
            "Rust accepted {n:?}"
        );
    }
    // Invalid UTF-8 cannot travel in JSON; Go's own test covers "\xff".
    assert!(matches!(
        note::parse(&[b"\xff".as_slice(), good.as_bytes()].concat()),
        Err(NoteError::MalformedNote(note::Malformed::InvalidUtf8 {
            offset: 0
        }))
    ));
}

#[test]
fn documented_divergences_from_go_note_open() {
    // Where this crate is stricter than Go's note.Open, shown on Go's side.
    let Some(bin) = go_ref() else { return };
    let signer = Signer::generate("div.example/k").unwrap();
    let vk = signer.verifier_key();
    let good = note::sign("t\n", &[&signer]).unwrap();
    let line = good.lines().last().unwrap().to_owned();
    let b64 = line.rsplit(' ').next().unwrap().to_owned();

    // 1. Non-canonical base64 (68 bytes leave 2 free bits before "="): Go
    //    accepts a second spelling of the same signature, we refuse it.
    let mut chars: Vec<char> = b64.chars().collect();
    let last = chars.len() - 2;
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pos = alphabet.find(chars[last]).unwrap();
    chars[last] = alphabet.chars().nth(pos ^ 1).unwrap();
    let malleable = good.replacen(&b64, &chars.iter().collect::<String>(), 1);
    // 2. A second, bad signature line by an already verified key: Go skips
    //    it, we refuse the note.
    // (Characters 8.. encode signature bytes; the first 5 hold the key id.)
    let tampered_line = line.replacen(&b64[8..16], "AAAAAAAA", 1);
    let dup_bad = format!("{good}{tampered_line}\n");
    let answers = go(
        bin,
        json!([
            {"op": "open", "note": malleable, "vkeys": [vk.to_string()]},
            {"op": "open", "note": dup_bad, "vkeys": [vk.to_string()]},
        ]),
    );
    go_ok(&answers[0]);
    assert!(matches!(
        note::open(malleable.as_bytes(), std::slice::from_ref(&vk)),
        Err(NoteError::MalformedNote(note::Malformed::SignatureBase64 {
            line: 1
        }))
    ));
    go_ok(&answers[1]);
    assert!(matches!(
        note::open(dup_bad.as_bytes(), &[vk]),
        Err(NoteError::BadSignature { .. })
    ));
}

// -------------------------------------------------------------- merkle --

fn leaf(i: u64) -> Vec<u8> {
    // The Go program's Leaf(i).
    format!("hermetic leaf {i}\n").into_bytes()
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|h| h.as_str().unwrap().parse().unwrap())
        .collect()
}

fn build(n: u64) -> Vec<Hash> {
    let mut stored = Vec::new();
    for i in 0..n {
        let new = merkle::stored_hashes(i, &leaf(i), &stored).unwrap();
        stored.extend(new);
    }
    stored
}

/// Pairs (a, b) with 0 <= b < a <= max spread over the whole range, with
/// the edges (first, last, powers of two and their neighbours).
fn sample_pairs(max: u64, seed: u64) -> Vec<[u64; 2]> {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut sizes: Vec<u64> = vec![max, max - 1];
    let mut p = 1;
    while p <= max {
        sizes.extend(
            [p - 1, p, p + 1]
                .into_iter()
                .filter(|&s| s >= 1 && s <= max),
        );
        p *= 2;
    }
    sizes.extend((0..40).map(|_| 1 + next() % max));
    let mut pairs = Vec::new();
    for &a in &sizes {
        for b in [0, a - 1, a / 2, next() % a] {
            pairs.push([a, b]);
        }
    }
    pairs
}

fn check_tree_against_go(bin: &GoRef, leaves: u64, all_up_to: u64, index_up_to: u64) {
    let record_pairs = sample_pairs(leaves, 0x2545_f491_4f6c_dd1d);
    // Consistency needs 1 <= old <= new.
    let tree_pairs: Vec<[u64; 2]> = record_pairs.iter().map(|&[t, n]| [t, n + 1]).collect();
    let a = go_one(
        bin,
        json!({
            "op": "tree",
            "leaves": leaves,
            "all_proofs_up_to": all_up_to,
            "record_pairs": record_pairs,
            "tree_pairs": tree_pairs,
            "index_up_to": index_up_to,
        }),
    );
    let a = go_ok(&a);
    let stored = build(leaves);
    assert_eq!(hashes(&a["stored"]), stored, "stored hashes");

    let go_roots = hashes(&a["roots"]);
    // Go answers all zeros for the empty tree; RFC 6962 says SHA-256("").
    assert_eq!(go_roots[0], Hash::default());
    assert_eq!(
        merkle::tree_hash(0, &stored).unwrap(),
        merkle::empty_tree_hash()
    );
    for (size, root) in go_roots.iter().enumerate().skip(1) {
        assert_eq!(
            merkle::tree_hash(size as u64, &stored).unwrap(),
            *root,
            "root of {size}"
        );
    }

    let proofs = a["record_proofs"].as_array().unwrap();
    assert!(proofs.len() as u64 >= all_up_to * (all_up_to + 1) / 2);
    for p in proofs {
        let (t, n) = (p["t"].as_u64().unwrap(), p["n"].as_u64().unwrap());
        let go_proof = hashes(&p["proof"]);
        assert_eq!(
            merkle::prove_record(t, n, &stored).unwrap(),
            go_proof,
            "inclusion {n} in {t}"
        );
        merkle::check_record(
            &go_proof,
            t,
            &go_roots[t as usize],
            n,
            &merkle::record_hash(&leaf(n)),
        )
        .unwrap();
    }
    let proofs = a["tree_proofs"].as_array().unwrap();
    for p in proofs {
        let (t, n) = (p["t"].as_u64().unwrap(), p["n"].as_u64().unwrap());
        let go_proof = hashes(&p["proof"]);
        assert_eq!(
            merkle::prove_tree(t, n, &stored).unwrap(),
            go_proof,
            "consistency {n} -> {t}"
        );
        merkle::check_tree(
            &go_proof,
            t,
            &go_roots[t as usize],
            n,
            &go_roots[n as usize],
        )
        .unwrap();
    }

    // Go's tree note is a checkpoint with the origin "go.sum database tree".
    let ours = Checkpoint {
        origin: "go.sum database tree".into(),
        size: leaves,
        root_hash: go_roots[leaves as usize],
        extensions: vec![],
    };
    assert_eq!(s(a, "tree_note"), ours.to_text().unwrap());
    assert_eq!(Checkpoint::parse(&s(a, "tree_note")).unwrap(), ours);

    let split = a["split"].as_array().unwrap();
    let count = a["count"].as_array().unwrap();
    let index = a["index"].as_array().unwrap();
    assert_eq!(split.len() as u64, index_up_to + 1);
    for x in 0..=index_up_to {
        let (level, n) = merkle::split_stored_hash_index(x);
        assert_eq!(json!([level, n]), split[x as usize], "split {x}");
        assert_eq!(
            json!(merkle::stored_hash_count(x)),
            count[x as usize],
            "count {x}"
        );
        for level in 0..8u32 {
            assert_eq!(
                json!([level, merkle::stored_hash_index(level, x)]),
                index[(x * 8 + u64::from(level)) as usize]
            );
        }
    }
}

#[test]
fn merkle_small_trees_equal_go_every_proof() {
    let Some(bin) = go_ref() else { return };
    check_tree_against_go(bin, 70, 70, 300);
}

#[test]
fn merkle_larger_tree_equals_go_sampled_proofs() {
    let Some(bin) = go_ref() else { return };
    check_tree_against_go(bin, 4099, 0, 0);
}

// ---------------------------------------------------------- checkpoint --

#[test]
fn go_parses_our_checkpoints() {
    let Some(bin) = go_ref() else { return };
    let stored = build(9);
    let mut cps = Vec::new();
    for (size, extensions) in [(0u64, vec![]), (1, vec![]), (9, vec!["ext a", "ext b"])] {
        cps.push(Checkpoint {
            origin: "go.sum database tree".into(),
            size,
            root_hash: merkle::tree_hash(size, &stored).unwrap(),
            extensions: extensions.into_iter().map(String::from).collect(),
        });
    }
    let answers = go(
        bin,
        cps.iter()
            .map(|c| json!({"op": "parse_tree", "text": c.to_text().unwrap()}))
            .collect(),
    );
    for (c, a) in cps.iter().zip(&answers) {
        let a = go_ok(a);
        assert_eq!(a.get("size").and_then(Value::as_u64).unwrap_or(0), c.size);
        assert_eq!(s(a, "hash").parse::<Hash>().unwrap(), c.root_hash);
    }
    // Both refuse a size with a leading zero or a sign, and a short hash.
    let h = merkle::empty_tree_hash();
    let bad = [
        format!("go.sum database tree\n01\n{h}\n"),
        format!("go.sum database tree\n+1\n{h}\n"),
        "go.sum database tree\n1\nAAAA\n".to_owned(),
        format!("go.sum database tree\n1\n{h}"),
    ];
    let answers = go(
        bin,
        bad.iter()
            .map(|t| json!({"op": "parse_tree", "text": t}))
            .collect(),
    );
    for (t, a) in bad.iter().zip(&answers) {
        assert!(a.get("error").is_some(), "Go accepted {t:?}");
        assert!(Checkpoint::parse(t).is_err(), "Rust accepted {t:?}");
    }
}

// ---------------------------------------------------------------- tile --

#[test]
fn tiles_equal_go_height_8_tiles() {
    let Some(bin) = go_ref() else { return };
    let leaves = 70_000u64;
    let sizes: Vec<[u64; 2]> = vec![
        [0, 1],
        [1, 2],
        [255, 256],
        [256, 257],
        [600, 1000],
        [65_535, 65_536],
        [65_536, 65_537],
        [69_000, 70_000],
        [0, 70_000],
    ];
    let a = go_one(
        bin,
        json!({
            "op": "tree",
            "leaves": leaves,
            "no_dump": true,
            "tile_height": 8,
            "tile_sizes": sizes,
        }),
    );
    let a = go_ok(&a);
    let stored = build(leaves);
    let go_tiles = a["tiles"].as_array().unwrap();
    for [old, new] in sizes {
        let theirs: Vec<(Tile, Vec<u8>)> = go_tiles
            .iter()
            .filter(|t| t["old"] == json!(old) && t["size"] == json!(new))
            .map(|t| {
                // Go writes the height into the path: tile/8/<L>/...
                let path = s(t, "path");
                let ours = path.replacen("tile/8/", "tile/", 1);
                let tile: Tile = ours.parse().unwrap_or_else(|e| panic!("{path}: {e}"));
                assert_eq!(tile.path(), ours);
                (tile, base64_decode(&s(t, "data")))
            })
            .collect();
        assert!(!theirs.is_empty());
        for (tile, data) in &theirs {
            assert_eq!(&read_tile_data(tile, &stored).unwrap(), data, "{tile}");
        }
        // Ours lists the same tiles, less the partial ones of sizes between
        // (Go re-lists every width from the old size's on).
        let ours = new_tiles(old, new);
        for t in &ours {
            assert!(
                theirs.iter().any(|(g, _)| g == t),
                "{t} missing in Go's list"
            );
        }
        for (g, _) in &theirs {
            if !ours.contains(g) {
                assert!(!g.is_full(), "{g}");
                // A tile the old size already had, or a narrower version
                // of one we list (a size in between).
                assert!(
                    tiles_for_size(old).contains(g)
                        || ours
                            .iter()
                            .any(|t| t.kind == g.kind && t.n == g.n && t.width > g.width),
                    "{g}"
                );
            }
        }
    }

    // Path parsing agrees, entry bundles being Go's data tiles.
    let paths = [
        ("tile/8/0/x001/x234/067", Some("tile/0/x001/x234/067")),
        ("tile/8/2/000.p/1", Some("tile/2/000.p/1")),
        (
            "tile/8/data/x001/002.p/255",
            Some("tile/entries/x001/002.p/255"),
        ),
        ("tile/8/0/x000/001", None),
        ("tile/8/0/000.p/256", None),
        ("tile/8/0/000.p/0", None),
        ("tile/8/0/01", None),
    ];
    let answers = go(
        bin,
        paths
            .iter()
            .map(|(p, _)| json!({"op": "tile_path", "path": p}))
            .collect(),
    );
    for ((go_path, ours), a) in paths.iter().zip(&answers) {
        match ours {
            Some(ours) => {
                let a = go_ok(a);
                let t: Tile = ours.parse().unwrap();
                assert_eq!(a["tile"]["n"], json!(t.n));
                assert_eq!(a["tile"]["w"], json!(t.width));
                let level = match t.kind {
                    TileKind::Hashes { level } => i64::from(level),
                    TileKind::Entries => -1,
                };
                assert_eq!(a["tile"]["l"], json!(level));
            }
            None => {
                assert!(a.get("error").is_some(), "Go accepted {go_path}");
                let ours = go_path
                    .replacen("tile/8/data/", "tile/entries/", 1)
                    .replacen("tile/8/", "tile/", 1);
                assert!(ours.parse::<Tile>().is_err(), "Rust accepted {ours}");
            }
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
