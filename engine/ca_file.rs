//! Reading a PEM file of CA certificates (`ca_file` of an http probe): used by validate to
//! check the file and by the HTTP client to trust it. Nothing here imports another engine module
//! but the text formatting leaf.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::format::lowercase_first;

/// The certificates of a PEM file; the reason says what is wrong with it.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    // A CA bundle is tens of KiB; the bound keeps `/dev/zero` or a FIFO from hanging a probe.
    let bytes = crate::bounded_read::read_bounded(path, 4 << 20).map_err(|error| {
        let text = error.to_string();
        lowercase_first(text.split(" (os error").next().unwrap_or(&text))
    })?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("it is not a valid PEM file: {error}"))?;
    if certificates.is_empty() {
        return Err("it holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_string());
    }
    Ok(certificates)
}
