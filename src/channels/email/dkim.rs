//! DKIM signing (`[smtp.dkim]`), through lettre's `dkim` feature.
//!
//! lettre's defaults do not verify at a standard verifier: its "simple" header
//! canonicalization breaks on its own header folding, and it adds the multipart Content-Type
//! after signing, so a signed Content-Type never matches. Hence relaxed/relaxed, and the signed
//! list below without Content-Type. `List-Unsubscribe` and `List-Unsubscribe-Post` are signed
//! because mailbox providers honour one-click unsubscribe only when they are (RFC 8058 §4); on a
//! message without them, naming them still stops anyone from adding them later.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig as LettreDkim, DkimSigningAlgorithm, DkimSigningKey,
};
use lettre::message::header::HeaderName;
use serde::Deserialize;

use crate::config::{ConfigProblem, Secret, resolve_secret};

/// The headers every signature covers.
pub const SIGNED_HEADERS: [&str; 8] =
    ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Unsubscribe", "List-Unsubscribe-Post"];

/// The signing algorithm of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    /// rsa-sha256; the key as PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`).
    #[default]
    Rsa,
    /// ed25519-sha256 (RFC 8463); the key as PKCS#8 PEM (`openssl genpkey -algorithm ed25519`)
    /// or as the base64 of its 32-byte seed.
    Ed25519,
}

/// `[smtp.dkim]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// The selector: the public key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// The signing domain (`d=`); for DMARC it must align with the From address's domain.
    pub domain: String,
    #[serde(default)]
    pub algorithm: DkimAlgorithm,
    /// The private key inline, or `private_key_file`.
    #[serde(default)]
    pub private_key: Option<Secret>,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
}

/// Signs messages with one key. Built once, at start-up.
pub(super) struct Signer(LettreDkim);

impl Signer {
    /// The signer the configuration describes, or everything wrong with it.
    pub(super) fn new(cfg: &DkimConfig) -> Result<Signer, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        if !is_domain(&cfg.selector) {
            problems.push(ConfigProblem::new(
                "smtp.dkim.selector",
                format!("{:?} is not a DNS label such as tidings2026", cfg.selector),
            ));
        }
        if !is_domain(&cfg.domain) || !cfg.domain.contains('.') {
            problems.push(ConfigProblem::new(
                "smtp.dkim.domain",
                format!("{:?} is not a domain such as club.example.com", cfg.domain),
            ));
        }
        let key =
            match resolve_secret(cfg.private_key.as_ref(), cfg.private_key_file.as_deref(), "smtp.dkim.private_key") {
                Ok(secret) => match signing_key(secret.expose(), cfg.algorithm) {
                    Ok(key) => Some(key),
                    Err(problem) => {
                        // Name the key the operator set: the inline one wins when both are.
                        let inline = cfg.private_key.as_ref().is_some_and(|s| !s.expose().is_empty());
                        let name = if inline { "smtp.dkim.private_key" } else { "smtp.dkim.private_key_file" };
                        problems.push(ConfigProblem::new(name, problem));
                        None
                    }
                },
                Err(problem) => {
                    problems.push(problem);
                    None
                }
            };
        match key {
            Some(key) if problems.is_empty() => {
                let headers = SIGNED_HEADERS.iter().map(|h| HeaderName::new_from_ascii_str(h)).collect();
                let canonicalization = DkimCanonicalization {
                    header: DkimCanonicalizationType::Relaxed,
                    body: DkimCanonicalizationType::Relaxed,
                };
                let domain = cfg.domain.trim().to_ascii_lowercase();
                Ok(Signer(LettreDkim::new(cfg.selector.trim().to_owned(), domain, key, headers, canonicalization)))
            }
            _ => Err(problems),
        }
    }

    /// Adds the DKIM-Signature header. Sign last: a header added afterwards is not covered.
    pub(super) fn sign(&self, message: &mut Message) {
        message.sign(&self.0);
    }
}

/// lettre's key from the configured text, or what is wrong with it (never the key itself).
fn signing_key(text: &str, algorithm: DkimAlgorithm) -> Result<DkimSigningKey, String> {
    let text = text.trim();
    match algorithm {
        DkimAlgorithm::Rsa => {
            if text.contains("-----BEGIN PRIVATE KEY-----") {
                return Err("the RSA key is PKCS#8 (BEGIN PRIVATE KEY); DKIM signing needs PKCS#1 \
                            (BEGIN RSA PRIVATE KEY): convert it with `openssl rsa -in key.pem -traditional`"
                    .to_owned());
            }
            DkimSigningKey::new(text, DkimSigningAlgorithm::Rsa)
                .map_err(|_| "not an RSA private key in PKCS#1 PEM (-----BEGIN RSA PRIVATE KEY-----)".to_owned())
        }
        DkimAlgorithm::Ed25519 => {
            let seed = ed25519_seed(text)?;
            DkimSigningKey::new(&BASE64.encode(seed), DkimSigningAlgorithm::Ed25519)
                .map_err(|_| "not an Ed25519 private key".to_owned())
        }
    }
}

/// The 32-byte seed from PKCS#8 PEM or from the base64 of the seed itself.
fn ed25519_seed(text: &str) -> Result<[u8; 32], String> {
    const WANT: &str =
        "not an Ed25519 private key: give PKCS#8 PEM (BEGIN PRIVATE KEY) or the base64 of the 32-byte seed";
    let seed = match text.strip_prefix("-----BEGIN PRIVATE KEY-----") {
        Some(rest) => {
            let body = rest.split("-----END PRIVATE KEY-----").next().unwrap_or_default();
            let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let der = BASE64.decode(body).map_err(|_| WANT.to_owned())?;
            pkcs8_ed25519_seed(&der).ok_or_else(|| format!("{WANT} (this PEM holds another kind of key)"))?.to_vec()
        }
        None => BASE64.decode(text).map_err(|_| WANT.to_owned())?,
    };
    seed.try_into().map_err(|_| WANT.to_owned())
}

/// The seed in an Ed25519 PKCS#8 key (RFC 8410): v1 as OpenSSL writes it (48 bytes), or v2
/// with the public key after the seed, as ring writes it.
fn pkcs8_ed25519_seed(der: &[u8]) -> Option<&[u8]> {
    const ALGORITHM: [u8; 7] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]; // SEQUENCE { OID 1.3.101.112 }
    const SEED: [u8; 4] = [0x04, 0x22, 0x04, 0x20]; // OCTET STRING { OCTET STRING (32) }
    let rest = match der {
        [0x30, 0x2e, 0x02, 0x01, 0x00, rest @ ..] if rest.len() == 0x2e - 3 => rest,
        [0x30, len, 0x02, 0x01, 0x01, rest @ ..] if usize::from(*len) == rest.len() + 3 => rest,
        _ => return None,
    };
    let rest = rest.strip_prefix(&ALGORITHM[..])?.strip_prefix(&SEED[..])?;
    rest.get(..32)
}

/// Letters, digits, hyphens and dots, as DNS names are written.
fn is_domain(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ed25519 key made with `openssl genpkey -algorithm ed25519` (a throwaway, for tests).
    const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBqhuAgbGpOWaXCHMzzyn9GjuYFc4Ai+zQ3B1l0Rmkjt\n-----END PRIVATE KEY-----\n";

    fn config(extra: &str) -> DkimConfig {
        let text = format!("selector = \"s2026\"\ndomain = \"club.example.com\"\n{extra}");
        toml::from_str(&text).expect("test config parses")
    }

    /// The keys `Signer::new` names for `extra` lines.
    fn check(extra: &str, expected: &[&str]) {
        let keys: Vec<String> = match Signer::new(&config(extra)) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| p.key).collect(),
        };
        assert_eq!(keys, expected, "for {extra:?}");
    }

    #[test]
    fn keys_are_checked_and_named() {
        let pem = ED25519_PEM.replace('\n', "\\n");
        check(&format!("algorithm = \"ed25519\"\nprivate_key = \"{pem}\""), &[]);
        let seed = BASE64.encode(ed25519_seed(ED25519_PEM).unwrap());
        check(&format!("algorithm = \"ed25519\"\nprivate_key = \"{seed}\""), &[]);
        check("", &["smtp.dkim.private_key"]);
        check("private_key = \"not a key\"", &["smtp.dkim.private_key"]);
        check("algorithm = \"ed25519\"\nprivate_key = \"c2hvcnQ=\"", &["smtp.dkim.private_key"]);
        check("private_key_file = \"/nonexistent/dkim.pem\"", &["smtp.dkim.private_key_file"]);
        // An Ed25519 PEM given as RSA is refused, with the conversion hint for PKCS#8.
        check(&format!("private_key = \"{pem}\""), &["smtp.dkim.private_key"]);
    }

    #[test]
    fn a_bad_key_in_a_file_names_the_file_key_and_never_prints_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dkim.pem");
        std::fs::write(&path, ED25519_PEM).unwrap();
        let cfg = config(&format!("private_key_file = {:?}", path.display().to_string()));
        let problems = Signer::new(&cfg).err().unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "smtp.dkim.private_key_file");
        assert!(problems[0].problem.contains("PKCS#1"), "{}", problems[0].problem);
        assert!(!problems[0].to_string().contains("MC4CAQAw"), "the key leaked");
    }

    #[test]
    fn selector_and_domain_must_be_dns_names() {
        let pem = ED25519_PEM.replace('\n', "\\n");
        let key = format!("algorithm = \"ed25519\"\nprivate_key = \"{pem}\"");
        let mut cfg = config(&key);
        cfg.selector = "bad selector".into();
        cfg.domain = "localhost".into();
        let keys: Vec<String> = Signer::new(&cfg).err().unwrap().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["smtp.dkim.selector", "smtp.dkim.domain"]);
    }

    #[test]
    fn the_seed_comes_out_of_pkcs8_v1_and_v2() {
        let seed = ed25519_seed(ED25519_PEM).unwrap();
        assert_eq!(ed25519_seed(&BASE64.encode(seed)).unwrap(), seed);
        assert!(ed25519_seed("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());

        // ring writes v2 (the public key follows the seed); both give the same key pair.
        let rng = ring::rand::SystemRandom::new();
        let v2 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let seed = pkcs8_ed25519_seed(v2.as_ref()).unwrap();
        let from_seed = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).unwrap();
        let from_pkcs8 = ring::signature::Ed25519KeyPair::from_pkcs8(v2.as_ref()).unwrap();
        use ring::signature::KeyPair as _;
        assert_eq!(from_seed.public_key().as_ref(), from_pkcs8.public_key().as_ref());
    }
}
