/// Secret names travel in URLs, logs, file names and the HPKE context:
/// keep them plain. 1 to 128 of `A-Z a-z 0-9 - _ .`.
pub fn check_secret_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 128 {
        return Err("a secret name is 1 to 128 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("a secret name uses only A-Z, a-z, 0-9, '-', '_' and '.'");
    }
    Ok(())
}
