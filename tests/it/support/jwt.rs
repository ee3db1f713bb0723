//! Taking a compact JWT apart, as the push peers do before checking its signature and claims.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// A JWT's three parts, decoded.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub header: Value,
    pub claims: Value,
    /// `header.claims` as sent: what the signature covers.
    pub signing_input: String,
    pub signature: Vec<u8>,
}

impl Jwt {
    /// Splits and decodes `token`; every part must be unpadded base64url, header and claims
    /// JSON objects.
    pub fn parse(token: &str) -> Result<Jwt, String> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header, claims, signature] = parts[..] else {
            return Err(format!("a jwt has three parts, this has {}", parts.len()));
        };
        let decode = |part: &str, name: &str| {
            URL_SAFE_NO_PAD.decode(part).map_err(|e| format!("jwt {name} is not unpadded base64url: {e}"))
        };
        let json = |bytes: Vec<u8>, name: &str| -> Result<Value, String> {
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("jwt {name} is not json: {e}"))?;
            if value.is_object() { Ok(value) } else { Err(format!("jwt {name} is not a json object")) }
        };
        Ok(Jwt {
            header: json(decode(header, "header")?, "header")?,
            claims: json(decode(claims, "claims")?, "claims")?,
            signing_input: format!("{header}.{claims}"),
            signature: decode(signature, "signature")?,
        })
    }

    /// Checks an ES256 signature (raw `r || s`) with ring, against an uncompressed P-256 point.
    pub fn verify_es256(&self, public_key: &[u8]) -> Result<(), String> {
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public_key);
        key.verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| "the ES256 signature does not verify".into())
    }

    pub fn claim_i64(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }

    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }
}
