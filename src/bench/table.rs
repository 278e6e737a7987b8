//! Human-readable tables of results, for the terminal.

use std::fmt::Write;

use super::relu::ReluBenchResult;
use crate::results::RunResult;

/// Bytes as B/KB/MB/GB (decimal).
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} KB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

/// The per-layer table and totals of one run.
pub fn run_table(r: &RunResult) -> String {
    let mut s = String::new();
    let name = r
        .model
        .card
        .name
        .clone()
        .unwrap_or_else(|| r.model.path.clone());
    let _ = writeln!(
        s,
        "{name}  ({} {}, method {}, bn {}, budget {} of {} ReLUs, ℓ={} f={}, backend {}{}, {} threads, {})",
        r.model.card.architecture,
        r.model.card.dataset,
        r.model.card.method,
        r.model.bn_path,
        r.model.budget,
        r.model.total_relus,
        r.ring.ell,
        r.ring.frac,
        r.backend,
        if r.backend.to_string() == "dealer" { " (trusted dealer, not two-party)" } else { "" },
        r.threads,
        r.transport,
    );
    let _ = writeln!(
        s,
        "{:<22} {:<9} {:>8} {:>9} | {:>8} {:>10} {:>10} {:>4} | {:>8} {:>10} {:>10} {:>4}",
        "layer",
        "kind",
        "ReLUs",
        "MACs",
        "off s",
        "off c→s",
        "off s→c",
        "rnd",
        "on s",
        "on c→s",
        "on s→c",
        "rnd"
    );
    for l in &r.layers {
        if l.offline.bytes() == 0
            && l.online.bytes() == 0
            && l.offline.seconds < 1e-4
            && l.online.seconds < 1e-4
        {
            continue;
        }
        let _ = writeln!(
            s,
            "{:<22} {:<9} {:>8} {:>8.1}M | {:>8.3} {:>10} {:>10} {:>4} | {:>8.3} {:>10} {:>10} {:>4}",
            l.name,
            l.kind,
            l.relus_kept,
            l.macs as f64 / 1e6,
            l.offline.seconds,
            human_bytes(l.offline.bytes_client_to_server),
            human_bytes(l.offline.bytes_server_to_client),
            l.offline.rounds,
            l.online.seconds,
            human_bytes(l.online.bytes_client_to_server),
            human_bytes(l.online.bytes_server_to_client),
            l.online.rounds,
        );
    }
    if r.transport == "tcp" && r.setup.seconds_server == 0.0 {
        let _ = writeln!(
            s,
            "the server did not share its timings (start `serve` with --send-timings to include \
             them): its seconds read 0, its traffic is this client's seen from the other end"
        );
    }
    for (label, p) in [
        ("setup", &r.setup),
        ("offline", &r.offline),
        ("online", &r.online),
    ] {
        let _ = writeln!(
            s,
            "{label:<8} {:>8.3} s wall (server {:.3} s, client {:.3} s), {} client→server, {} server→client, {} rounds",
            p.seconds,
            p.seconds_server,
            p.seconds_client,
            human_bytes(p.bytes_client_to_server),
            human_bytes(p.bytes_server_to_client),
            p.rounds
        );
    }
    let _ = writeln!(
        s,
        "client storage {}, peak RSS {}, {} AND gates per ReLU",
        human_bytes(r.client_storage_bytes),
        human_bytes(r.peak_rss_bytes),
        r.and_gates_per_relu
    );
    for l in &r.links {
        let _ = writeln!(
            s,
            "on {:<8} offline {:>8.3} s, online {:>8.3} s{}",
            l.link.name,
            l.offline_seconds,
            l.online_seconds,
            if l.emulated {
                " (emulated)"
            } else {
                " (estimated)"
            }
        );
    }
    if let Some(he) = &r.he {
        let _ = writeln!(
            s,
            "he linear   {:.3} s, {} client→server + {} server→client + {} keys = {}; \
             Delphi-style SIMD packing ({} CRT primes, rotation keys not counted) would move {} \
             as Delphi sends ciphertexts, {} with our compression",
            he.seconds,
            human_bytes(he.bytes_client_to_server),
            human_bytes(he.bytes_server_to_client),
            human_bytes(he.key_bytes),
            human_bytes(he.bytes()),
            he.simd_crt_primes,
            human_bytes(he.simd_bytes_as_sent),
            human_bytes(he.simd_bytes_compressed),
        );
    }
    if !r.oracle_checked {
        let _ = writeln!(
            s,
            "class {}; not checked against the oracle: this client holds only the public bundle \
             (no weights), so the plain reference cannot be computed here",
            r.predicted_class
        );
        return s;
    }
    let _ = writeln!(
        s,
        "local truncations {} (max {} bits); probability that one of them wrapped on this input \
         ≤ {:.2e} (an after-the-fact figure for this input, from the oracle's values; a wrap \
         changes the result, and whether carries or wraps happen depends on secret values: \
         see README, Security)",
        r.local_truncation.count,
        r.local_truncation.max_value_bits,
        r.local_truncation.failure_probability
    );
    let _ = writeln!(
        s,
        "class {} (f32 class {}); secure vs fixed-point oracle: {} (max logit diff {:.2e}{}); fixed vs f32 max diff {:.2e}",
        r.predicted_class,
        r.f32_class,
        if r.correct { "CORRECT" } else { "WRONG" },
        r.max_logit_diff_vs_oracle,
        if r.exact { ", bit-exact" } else { "" },
        r.max_logit_diff_fixed_vs_f32
    );
    if let Some(w) = fixed_point_warning(r) {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

/// Relative fixed-point logit error above which a run is flagged: the secure result matches the
/// oracle, but the oracle itself is far from the f32 network.
pub const FIXED_POINT_WARNING: f64 = 0.05;

/// A warning when the ring is too coarse for the model: the fixed-point logits differ from f32
/// by more than [`FIXED_POINT_WARNING`] of the largest logit, or give another class. "CORRECT"
/// only says the secure run equals the fixed-point oracle; this says the oracle is not the model.
pub fn fixed_point_warning(r: &RunResult) -> Option<String> {
    if !r.oracle_checked {
        return None;
    }
    let scale = r.logits.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = r.max_logit_diff_fixed_vs_f32;
    let large = err.is_nan() || err > FIXED_POINT_WARNING * scale.max(f64::MIN_POSITIVE);
    if !large && r.predicted_class == r.f32_class {
        return None;
    }
    Some(format!(
        "the fixed-point logits (ℓ = {}, f = {}) differ from f32 by up to {err:.3} against logits \
         of magnitude {scale:.3}{}; the secure result equals the fixed-point oracle, but that \
         oracle is a poor copy of the model: raise --ell or --frac",
        r.ring.ell,
        r.ring.frac,
        if r.predicted_class == r.f32_class {
            String::new()
        } else {
            format!(
                ", and the class differs ({} vs f32 {})",
                r.predicted_class, r.f32_class
            )
        }
    ))
}

/// The result of `relu-bench`.
pub fn relu_table(r: &ReluBenchResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ReLUs, ℓ={} f={}, {} AND gates each, garbling {}, OT {}, {} threads",
        r.relus, r.ring.ell, r.ring.frac, r.and_gates_per_relu, r.garbling, r.ot, r.threads
    );
    let _ = writeln!(
        s,
        "time   {:>8.3} µs/ReLU total = {:.3} offline + {:.3} online (+ setup {:.1} ms once)",
        r.us_per_relu,
        r.us_per_relu_offline,
        r.us_per_relu_online,
        r.setup_seconds * 1e3
    );
    let _ = writeln!(
        s,
        "bytes  offline {:.0} B/ReLU ({:.0} client→server, {:.0} server→client; setup {} amortized in)",
        r.offline_bytes_per_relu,
        r.offline_bytes_per_relu_client_to_server,
        r.offline_bytes_per_relu_server_to_client,
        human_bytes(r.setup_bytes)
    );
    let _ = writeln!(
        s,
        "       online  {:.0} B/ReLU ({:.0} client→server, {:.0} server→client)",
        r.online_bytes_per_relu,
        r.online_bytes_per_relu_client_to_server,
        r.online_bytes_per_relu_server_to_client
    );
    let _ = writeln!(
        s,
        "       tables  {} B/ReLU; client storage {} B/ReLU (tables, output ciphertexts, input labels, mask)",
        r.table_bytes_per_relu, r.client_storage_bytes_per_relu
    );
    if let Some(p) = &r.process {
        // The count recorded with the run, so a result printed elsewhere names its machine's.
        let cpus = p.machine_cpus.unwrap_or(r.threads);
        let _ = writeln!(
            s,
            "cpu    {:.2} s = {:.2} user + {:.2} kernel over {:.2} s: {:.2} of {} cores busy{}; peak memory {}",
            p.cpu_seconds(),
            p.cpu_user_seconds,
            p.cpu_system_seconds,
            p.wall_seconds,
            p.cores_busy(),
            cpus,
            match (&r.process_offline, &r.process_online) {
                (Some(off), Some(on)) => format!(
                    " (offline {:.2}, online {:.2})",
                    off.cores_busy(),
                    on.cores_busy()
                ),
                _ => String::new(),
            },
            human_bytes(p.peak_rss_bytes)
        );
        if let (Some(idle), Some(steal)) = (p.idle_share(), p.steal_share()) {
            let _ = writeln!(
                s,
                "       the machine meanwhile: {:.0} % idle, {:.0} % stolen by the hypervisor",
                idle * 100.0,
                steal * 100.0
            );
        }
    }
    if let Some(thp) = &r.machine_huge_pages {
        let _ = writeln!(s, "       transparent huge pages: {thp}");
    }
    let _ = writeln!(
        s,
        "check  {}",
        if r.correct {
            "every output correct"
        } else {
            "WRONG OUTPUTS"
        }
    );
    s
}
