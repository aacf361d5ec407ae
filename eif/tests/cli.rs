//! The built binary: describe / check / pcr / policy / build and exit codes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hermetic-eif"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A self-built signed image in `dir` (independent of the shared vectors).
fn own_image(dir: &Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["cli".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let kp = dir.join("key.pem");
    let cp = dir.join("cert.pem");
    std::fs::write(&kp, key.serialize_pem()).unwrap();
    std::fs::write(&cp, cert.pem()).unwrap();
    std::fs::write(dir.join("k"), common::bytes(1, 5000)).unwrap();
    std::fs::write(dir.join("r0"), common::bytes(2, 3000)).unwrap();
    std::fs::write(dir.join("r1"), common::bytes(3, 2000)).unwrap();
    let out = dir.join("img.eif");
    let o = run(&[
        "build",
        "--kernel",
        s(&dir.join("k")),
        "--cmdline",
        "console=ttyS0",
        "--ramdisk",
        s(&dir.join("r0")),
        "--ramdisk",
        s(&dir.join("r1")),
        "--sign-key",
        s(&kp),
        "--sign-cert",
        s(&cp),
        "--output",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (out, cp)
}

#[test]
fn describe_vectors_match_reference() {
    let Some(dir) = common::vectors() else { return };
    for name in ["one_ramdisk", "two_ramdisks_signed"] {
        let refj = common::reference(&dir, name);
        let o = run(&["describe", s(&dir.join(format!("{name}.eif")))]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["Measurements"], refj["measurements"], "{name}");
        assert_eq!(v["CheckCRC"], true);
        assert_eq!(v["IsSigned"], refj["signed"]);
        assert_eq!(v["EifVersion"], refj["header"]["version"]);
        assert_eq!(v["Header"]["Magic"], ".eif");
        assert_eq!(v["Header"]["Arch"], "x86_64");
        assert_eq!(v["Header"]["NumSections"], refj["header"]["num_sections"]);
        if refj["signed"] == true {
            assert_eq!(v["SignatureCheck"], true);
        } else {
            assert!(v.get("SignatureCheck").is_none());
        }
        let t = run(&[
            "describe",
            "--format",
            "text",
            s(&dir.join(format!("{name}.eif"))),
        ]);
        assert_eq!(t.status.code(), Some(0));
        let text = stdout(&t);
        assert!(
            text.contains(refj["measurements"]["PCR0"].as_str().unwrap()),
            "{text}"
        );
        assert!(text.contains("CRC32"), "{text}");
    }
}

#[test]
fn describe_corrupt_fails_unless_lenient() {
    let d = tmpdir();
    let (img, _) = own_image(d.path());
    let mut b = std::fs::read(&img).unwrap();
    b[700] ^= 0x55; // inside the kernel
    let bad = d.path().join("bad.eif");
    std::fs::write(&bad, &b).unwrap();
    let o = run(&["describe", s(&bad)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("CRC mismatch"), "{}", stderr(&o));
    let o = run(&["describe", "--lenient", s(&bad)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["CheckCRC"], false);
    assert_eq!(
        v["SignatureCheck"], false,
        "kernel changed, PCR0 differs from the signed one"
    );

    let trunc = d.path().join("trunc.eif");
    std::fs::write(&trunc, &b[..300]).unwrap();
    let o = run(&["describe", s(&trunc)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    let o = run(&["describe", s(&d.path().join("missing.eif"))]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_against_describe_json() {
    let Some(dir) = common::vectors() else { return };
    let one = dir.join("one_ramdisk.eif");
    let two = dir.join("two_ramdisks_signed.eif");
    let o = run(&[
        "check",
        s(&one),
        "--expect",
        s(&dir.join("one_ramdisk.describe.json")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).starts_with("OK"), "{}", stdout(&o));
    // The other image's PCRs: PCR1 equal, PCR0/PCR2 differ, PCR8 absent.
    let o = run(&[
        "check",
        s(&one),
        "--expect",
        s(&dir.join("two_ramdisks_signed.describe.json")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("MISMATCH"), "{out}");
    assert!(
        out.contains("PCR0:") && out.contains("PCR2:") && out.contains("PCR8:"),
        "{out}"
    );
    assert!(out.contains("PCR1: matches"), "{out}");
    assert!(out.contains("absent: image is not signed"), "{out}");
    let refj = common::reference(&dir, "one_ramdisk");
    assert!(
        out.contains(refj["measurements"]["PCR0"].as_str().unwrap()),
        "{out}"
    );

    // Our describe JSON (nitro-cli shape, top-level "Measurements") works as an expectation.
    let d = tmpdir();
    let desc = run(&["describe", s(&two)]);
    let p = d.path().join("two.json");
    std::fs::write(&p, &desc.stdout).unwrap();
    assert_eq!(
        run(&["check", s(&two), "--expect", s(&p)]).status.code(),
        Some(0)
    );
    assert_eq!(
        run(&["check", s(&one), "--expect", s(&p)]).status.code(),
        Some(1)
    );
}

#[test]
fn check_against_nitro_cli_json_and_policy() {
    let d = tmpdir();
    let (img, _) = own_image(d.path());
    let desc: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["describe", s(&img)]))).unwrap();
    let m = &desc["Measurements"];
    // nitro-cli describe-eif style (upper-case hex tolerated).
    let nitro = serde_json::json!({
        "EifVersion": 4,
        "Measurements": {
            "HashAlgorithm": "Sha384 { ... }",
            "PCR0": m["PCR0"].as_str().unwrap().to_uppercase(),
            "PCR1": m["PCR1"], "PCR2": m["PCR2"], "PCR8": m["PCR8"],
        },
        "IsSigned": true, "CheckCRC": true, "SignatureCheck": true,
    });
    let np = d.path().join("nitro.json");
    std::fs::write(&np, nitro.to_string()).unwrap();
    let o = run(&["check", s(&img), "--expect", s(&np)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    // Policy generated by `policy` passes; it names the image's PCR0/1/2/8.
    let o = run(&["policy", s(&img), "--secret", "db-password"]);
    assert_eq!(o.status.code(), Some(0));
    let stanza = stdout(&o);
    for k in ["PCR0", "PCR1", "PCR2", "PCR8"] {
        assert!(stanza.contains(m[k].as_str().unwrap()), "{stanza}");
    }
    assert!(
        stanza.contains("[secrets.db-password]")
            && stanza.contains("[[secrets.db-password.measurements]]")
    );
    let pp = d.path().join("policy.toml");
    std::fs::write(&pp, &stanza).unwrap();
    assert_eq!(
        run(&["check", s(&img), "--expect", s(&pp)]).status.code(),
        Some(0)
    );
    assert_eq!(
        run(&[
            "check",
            s(&img),
            "--expect",
            s(&pp),
            "--secret",
            "db-password"
        ])
        .status
        .code(),
        Some(0)
    );
    let o = run(&["check", s(&img), "--expect", s(&pp), "--secret", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope"));

    // Two secrets: one with a wrong PCR0 plus pcr3 (ignored with a note), one right.
    let wrong = "ab".repeat(48);
    let policy = format!(
        "[secrets.other]\nmax_age_secs = 300\n[[secrets.other.measurements]]\npcr0 = \"{wrong}\"\npcr3 = \"{wrong}\"\n\n{stanza}"
    );
    std::fs::write(&pp, &policy).unwrap();
    let o = run(&["check", s(&img), "--expect", s(&pp)]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("pcr3/pcr4"), "{}", stdout(&o));
    let o = run(&["check", s(&img), "--expect", s(&pp), "--secret", "other"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(&wrong), "{}", stdout(&o));

    // A set naming only pcr4 (or only pcr1) cannot vouch for an image: the
    // policy itself is refused, saying why.
    for only in ["pcr4", "pcr1"] {
        std::fs::write(
            &pp,
            format!("[secrets.x]\n[[secrets.x.measurements]]\n{only} = \"{wrong}\"\n"),
        )
        .unwrap();
        let o = run(&["check", s(&img), "--expect", s(&pp)]);
        assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
        assert!(
            stderr(&o).contains(&format!(
                "secrets.x.measurements[0]: names only {only}, which does not pin the enclave image"
            )),
            "{}",
            stderr(&o)
        );
    }

    // Malformed expectations are usage errors.
    for bad in [
        "[secrets.x]\n[[secrets.x.measurements]]\npcr0 = \"XYZ\"\n".to_string(),
        format!(
            "[secrets.x]\n[[secrets.x.measurements]]\npcr0 = \"{}\"\n",
            "AB".repeat(48)
        ),
        "[secrets.x]\nmeasurements = []\n".to_string(),
        format!("[secrets.x]\nbogus = 1\n[[secrets.x.measurements]]\npcr0 = \"{wrong}\"\n"),
        "{ \"Measurements\": { \"PCR0\": \"zz\" } }".to_string(),
        "not toml at all [".to_string(),
    ] {
        std::fs::write(&pp, &bad).unwrap();
        let o = run(&["check", s(&img), "--expect", s(&pp)]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stdout(&o));
    }
}

#[test]
fn pcr_command_matches_nitro_cli_shape() {
    let Some(dir) = common::vectors() else { return };
    let i = dir.join("inputs");
    let o = run(&["pcr", "--input", s(&i.join("kernel.bin"))]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let k = std::fs::read(i.join("kernel.bin")).unwrap();
    assert_eq!(v, serde_json::json!({ "PCR": common::recipe(&[&k]) }));
    let o = run(&["pcr", "--signing-certificate", s(&i.join("sign_cert.pem"))]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let refj = common::reference(&dir, "two_ramdisks_signed");
    assert_eq!(
        v,
        serde_json::json!({ "PCR8": refj["measurements"]["PCR8"] })
    );
    // Not a certificate.
    let o = run(&["pcr", "--signing-certificate", s(&i.join("kernel.bin"))]);
    assert_eq!(o.status.code(), Some(2));
    // Usage errors.
    assert_eq!(run(&["pcr"]).status.code(), Some(2));
    assert_eq!(
        run(&["pcr", "--input", "a", "--signing-certificate", "b"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn build_from_vector_inputs_reproduces_reference_pcrs() {
    let Some(dir) = common::vectors() else { return };
    let i = dir.join("inputs");
    let d = tmpdir();
    let out = d.path().join("signed.eif");
    let o = run(&[
        "build",
        "--kernel",
        s(&i.join("kernel.bin")),
        "--cmdline-file",
        s(&i.join("cmdline.txt")),
        "--ramdisk",
        s(&i.join("ramdisk0.cpio.gz")),
        "--ramdisk",
        s(&i.join("ramdisk1.cpio.gz")),
        "--sign-key",
        s(&i.join("sign_key.pem")),
        "--sign-cert",
        s(&i.join("sign_cert.pem")),
        "--output",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let refj = common::reference(&dir, "two_ramdisks_signed");
    let built: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(built["Measurements"], refj["measurements"]);
    let o = run(&[
        "check",
        s(&out),
        "--expect",
        s(&dir.join("two_ramdisks_signed.describe.json")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&run(&["describe", s(&out)]))).unwrap();
    assert_eq!(v["SignatureCheck"], true);
    assert_eq!(v["Measurements"], refj["measurements"]);
}

#[test]
fn build_aarch64_and_no_metadata() {
    let d = tmpdir();
    std::fs::write(d.path().join("k"), b"kernel").unwrap();
    std::fs::write(d.path().join("r"), b"ramdisk").unwrap();
    let out = d.path().join("arm.eif");
    let o = run(&[
        "build",
        "--kernel",
        s(&d.path().join("k")),
        "--cmdline",
        "",
        "--ramdisk",
        s(&d.path().join("r")),
        "--arch",
        "aarch64",
        "--no-metadata",
        "--output",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&run(&["describe", s(&out)]))).unwrap();
    assert_eq!(v["Header"]["Arch"], "aarch64");
    assert_eq!(v["Header"]["Flags"], 1);
    assert_eq!(v["Header"]["NumSections"], 3);
    assert_eq!(v["IsSigned"], false);
    assert_eq!(
        v["Measurements"]["PCR0"],
        common::recipe(&[b"kernel", b"", b"ramdisk"])
    );
    assert_eq!(v["Measurements"]["PCR2"], common::recipe(&[]));
}

#[test]
fn failed_build_leaves_no_file() {
    let d = tmpdir();
    std::fs::write(d.path().join("k"), b"kernel").unwrap();
    let out = d.path().join("out.eif");
    // Missing ramdisk.
    let o = run(&[
        "build",
        "--kernel",
        s(&d.path().join("k")),
        "--cmdline",
        "x",
        "--ramdisk",
        s(&d.path().join("missing")),
        "--output",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2));
    // Key without certificate, bad arch: usage errors.
    let o = run(&[
        "build",
        "--kernel",
        "k",
        "--cmdline",
        "x",
        "--ramdisk",
        "r",
        "--sign-key",
        "k",
        "--output",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&[
        "build",
        "--kernel",
        "k",
        "--cmdline",
        "x",
        "--ramdisk",
        "r",
        "--arch",
        "mips",
        "--output",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2));
    // Key that does not match the certificate: fails after reading inputs.
    let k1 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let k2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&k1)
        .unwrap();
    std::fs::write(d.path().join("key.pem"), k2.serialize_pem()).unwrap();
    std::fs::write(d.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(d.path().join("r"), b"r").unwrap();
    let o = run(&[
        "build",
        "--kernel",
        s(&d.path().join("k")),
        "--cmdline",
        "x",
        "--ramdisk",
        s(&d.path().join("r")),
        "--sign-key",
        s(&d.path().join("key.pem")),
        "--sign-cert",
        s(&d.path().join("cert.pem")),
        "--output",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not match"), "{}", stderr(&o));
    // Nothing but our inputs in the directory: no output, no temp file.
    let mut names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["cert.pem", "k", "key.pem", "r"]);
}

#[test]
fn build_replaces_existing_output_atomically() {
    let d = tmpdir();
    let (img, _) = own_image(d.path());
    let before = std::fs::read(&img).unwrap();
    // Rebuild to the same path with different inputs: the file is replaced whole.
    std::fs::write(d.path().join("k2"), b"other kernel").unwrap();
    let o = run(&[
        "build",
        "--kernel",
        s(&d.path().join("k2")),
        "--cmdline",
        "y",
        "--ramdisk",
        s(&d.path().join("r0")),
        "--output",
        s(&img),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = std::fs::read(&img).unwrap();
    assert_ne!(before, after);
    assert_eq!(run(&["describe", s(&img)]).status.code(), Some(0));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["describe"]).status.code(), Some(2));
    assert_eq!(
        run(&["describe", "x", "--format", "yaml"]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["check", "x"]).status.code(), Some(2));
}

#[test]
fn build_with_custom_metadata() {
    let d = tmpdir();
    std::fs::write(d.path().join("k"), b"kernel").unwrap();
    std::fs::write(d.path().join("r"), b"ramdisk").unwrap();
    let md = serde_json::json!({ "ImageName": "custom", "ImageVersion": "7", "Extra": [1, 2] });
    std::fs::write(d.path().join("md.json"), md.to_string()).unwrap();
    let out = d.path().join("m.eif");
    let args = |md_path: &str| {
        vec![
            "build".to_string(),
            "--kernel".into(),
            s(&d.path().join("k")).into(),
            "--cmdline".into(),
            "c".into(),
            "--ramdisk".into(),
            s(&d.path().join("r")).into(),
            "--metadata".into(),
            md_path.to_string(),
            "--output".into(),
            s(&out).into(),
        ]
    };
    let o = bin()
        .args(args(s(&d.path().join("md.json"))))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&run(&["describe", s(&out)]))).unwrap();
    assert_eq!(v["ImageName"], "custom");
    assert_eq!(v["ImageVersion"], "7");
    assert_eq!(v["Metadata"], md);
    // Metadata does not enter any PCR.
    assert_eq!(
        v["Measurements"]["PCR0"],
        common::recipe(&[b"kernel", b"c", b"ramdisk"])
    );
    // Not JSON: refused, and the previous output is left as it was.
    std::fs::write(d.path().join("bad.json"), b"{oops").unwrap();
    let before = std::fs::read(&out).unwrap();
    let o = bin()
        .args(args(s(&d.path().join("bad.json"))))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

#[test]
fn policy_of_an_unsigned_image_names_pcr0_1_2_and_loads() {
    let d = tmpdir();
    std::fs::write(d.path().join("k"), common::bytes(7, 4000)).unwrap();
    std::fs::write(d.path().join("r0"), common::bytes(8, 2000)).unwrap();
    let img = d.path().join("unsigned.eif");
    let o = run(&[
        "build",
        "--kernel",
        s(&d.path().join("k")),
        "--cmdline",
        "console=ttyS0",
        "--ramdisk",
        s(&d.path().join("r0")),
        "--output",
        s(&img),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["policy", s(&img), "--secret", "app"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stanza = stdout(&o);
    for (k, named) in [
        ("pcr0", true),
        ("pcr1", true),
        ("pcr2", true),
        ("pcr8", false),
    ] {
        assert_eq!(stanza.contains(&format!("{k} = ")), named, "{k}: {stanza}");
    }
    let pp = d.path().join("policy.toml");
    std::fs::write(&pp, &stanza).unwrap();
    let o = run(&["check", s(&img), "--expect", s(&pp), "--secret", "app"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}
