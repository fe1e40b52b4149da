//! Content scan throughput with the shipped rules: parse once (mail-parser),
//! then every content rule and code finding, over a corpus of realistic
//! ~10 KB messages (newsletters, shop notifications, replies with
//! attachments). Target: >= 20,000 msgs/s per core. First the confusion
//! matrix of the shipped rules on tests/fixtures/content (the full
//! pipeline, as `smtpgate check` runs it).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smtpgate::action::Action;
use smtpgate::app::App;
use smtpgate::checks::content::ContentCheck;
use smtpgate::config::Config;
use smtpgate::message::Parsed;
use smtpgate::pipeline::{judge as run, to_crlf, Envelope, Stop};
use smtpgate::rules::load_dir;
use smtpgate::smtp::command::Address;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

const WORDS: &[&str] = &[
    "order",
    "shipping",
    "your",
    "account",
    "invoice",
    "thank",
    "you",
    "for",
    "the",
    "newsletter",
    "product",
    "update",
    "offer",
    "week",
    "team",
    "support",
    "delivery",
    "tracking",
    "number",
    "details",
];

fn text(seed: usize, len: usize) -> String {
    let mut out = String::with_capacity(len + 80);
    let mut i = seed;
    let mut col = 0;
    while out.len() < len {
        let w = WORDS[i % WORDS.len()];
        i = i.wrapping_mul(31).wrapping_add(7);
        out.push_str(w);
        col += w.len() + 1;
        if col > 70 {
            out.push_str("\r\n");
            col = 0;
        } else {
            out.push(' ');
        }
    }
    out
}

/// Message `n` of the corpus, about 10 KB.
fn message(n: usize) -> Vec<u8> {
    let subject = if n.is_multiple_of(7) {
        "WEEKLY DEALS INSIDE".to_string()
    } else {
        format!("Your order {n} has shipped")
    };
    let mut m = format!(
        "Received: from web{n}.customer.test (web{n}.customer.test [192.0.2.{ip}])\r\n\tby mx.customer.test with ESMTP id {n:08X}; Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         From: Shop Team <shop@customer{n}.test>\r\nTo: Client <client{n}@example.net>\r\nSubject: {subject}\r\n\
         Date: Mon, 23 Nov 2026 10:00:{s:02} +0000\r\nMessage-ID: <{n}.bench@customer{n}.test>\r\nMIME-Version: 1.0\r\n\
         X-Mailer: PHPMailer 6.9.1\r\n{list}Content-Type: multipart/mixed; boundary=\"outer{n}\"\r\n\r\n\
         --outer{n}\r\nContent-Type: multipart/alternative; boundary=\"alt{n}\"\r\n\r\n\
         --alt{n}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{plain}\r\n\
         See https://www.customer{n}.test/orders/{n} for details.\r\n\
         --alt{n}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>{html}</p>\
         <p><a href=\"https://www.customer{n}.test/orders/{n}\">View your order</a> \
         <a href=\"https://{link}/x{n}\">www.customer{n}.test</a></p><img src=\"https://cdn.customer{n}.test/logo.png\"></body></html>\r\n\
         --alt{n}--\r\n",
        ip = n % 250 + 1,
        s = n % 60,
        list = if n.is_multiple_of(5) { format!("List-Id: <news.customer{n}.test>\r\nPrecedence: bulk\r\n") } else { String::new() },
        plain = text(n, 3500),
        html = text(n + 1, 3500),
        link = if n.is_multiple_of(11) { "bit.ly" } else { "track.customer.test" },
    );
    if n.is_multiple_of(3) {
        let name = if n.is_multiple_of(9) {
            "setup.exe"
        } else {
            "invoice.pdf"
        };
        m.push_str(&format!(
            "--outer{n}\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        for _ in 0..25 {
            m.push_str(
                "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURl\r\n",
            );
        }
    }
    m.push_str(&format!("--outer{n}--\r\n"));
    m.into_bytes()
}

/// The corpus files of `dir`, CRLF.
fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/content")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let raw = std::fs::read(&p).expect("read");
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                to_crlf(&raw),
            )
        })
        .collect()
}

/// Prints the confusion matrix of the corpus through the whole pipeline.
fn confusion() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = format!(
        "[server]\nhostname = \"gw.example.test\"\nlisten = [\"127.0.0.1:0\"]\n[upstream]\naddress = \"127.0.0.1:1\"\n[scoring]\nspam_action = \"reject\"\nrules_dir = \"{root}/rules\"\n"
    );
    let config = Config::from_text(Path::new("bench.toml"), &text).expect("config");
    let app = App::build(config, None).expect("app");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let envelope = Envelope {
        client_ip: "127.0.0.1".parse().unwrap(),
        helo: "web1.customer.test".into(),
        sender: Address {
            local: "site".into(),
            domain: "customer.test".into(),
        },
        recipients: vec![Address {
            local: "someone".into(),
            domain: "example.net".into(),
        }],
        login: None,
    };
    let mut matrix = [[0usize; 2]; 2];
    for (row, dir) in ["abuse", "legit"].iter().enumerate() {
        for (name, raw) in corpus(dir) {
            let v = rt.block_on(run(&app, &envelope, &raw)).expect("run");
            let stopped = !matches!(v.action, Action::Pass) || v.stop != Stop::Data;
            matrix[row][usize::from(!stopped)] += 1;
            if (row == 0) != stopped {
                println!(
                    "  misjudged {dir}/{name}: {} {:?}",
                    v.breakdown.total(),
                    v.action
                );
            }
        }
    }
    println!("confusion matrix (rows: corpus, columns: verdict)");
    println!("            stopped  passed");
    println!("  abuse     {:>7}  {:>6}", matrix[0][0], matrix[0][1]);
    println!("  legit     {:>7}  {:>6}", matrix[1][0], matrix[1][1]);
}

/// CPU time of this thread (nanoseconds on a CPU, from the scheduler): the
/// rate per core stays meaningful on a loaded shared machine.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Messages per CPU-second of `f` over the corpus, 20 rounds.
fn per_cpu_second(n: usize, mut f: impl FnMut()) -> f64 {
    let start = cpu_ns();
    for _ in 0..20 {
        f();
    }
    (20 * n) as f64 / ((cpu_ns() - start) as f64 / 1e9)
}

fn scan(c: &mut Criterion) {
    confusion();
    let rules =
        load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).expect("shipped rules");
    let check = ContentCheck::new(rules.content.clone());
    let corpus: Vec<Vec<u8>> = (0..200).map(message).collect();
    let avg = corpus.iter().map(Vec::len).sum::<usize>() / corpus.len();
    // One plain timed pass for a msgs/s figure, then criterion's statistics.
    let start = Instant::now();
    let mut hits = 0;
    for _ in 0..10 {
        for raw in &corpus {
            hits += check.scan(&Parsed::parse(raw), raw).len();
        }
    }
    let rate = (10 * corpus.len()) as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..10 {
        for raw in &corpus {
            black_box(Parsed::parse(raw));
        }
    }
    let parse_rate = (10 * corpus.len()) as f64 / start.elapsed().as_secs_f64();
    println!("  of which parsing alone: {parse_rate:.0} msgs/s");
    let start = Instant::now();
    for _ in 0..10 {
        for raw in &corpus {
            black_box(mail_parser::MessageParser::default().parse(raw));
        }
    }
    println!(
        "  mail-parser alone: {:.0} msgs/s",
        (10 * corpus.len()) as f64 / start.elapsed().as_secs_f64()
    );
    let parsed: Vec<Parsed> = corpus.iter().map(|r| Parsed::parse(r)).collect();
    let start = Instant::now();
    for _ in 0..10 {
        for (raw, p) in corpus.iter().zip(&parsed) {
            black_box(check.scan(p, raw));
        }
    }
    println!(
        "  rules and findings alone: {:.0} msgs/s",
        (10 * corpus.len()) as f64 / start.elapsed().as_secs_f64()
    );
    println!("content scan: {} messages of {avg} bytes on average, {hits} hits, {rate:.0} msgs/s on one core (target >= 20000)", corpus.len());
    let parsed2: Vec<Parsed> = corpus.iter().map(|r| Parsed::parse(r)).collect();
    let full = per_cpu_second(corpus.len(), || {
        for raw in &corpus {
            black_box(check.scan(&Parsed::parse(raw), raw));
        }
    });
    let parse = per_cpu_second(corpus.len(), || {
        for raw in &corpus {
            black_box(Parsed::parse(raw));
        }
    });
    let mp = per_cpu_second(corpus.len(), || {
        for raw in &corpus {
            black_box(mail_parser::MessageParser::default().parse(raw));
        }
    });
    let rules_only = per_cpu_second(corpus.len(), || {
        for (raw, p) in corpus.iter().zip(&parsed2) {
            black_box(check.scan(p, raw));
        }
    });
    println!("per CPU-second of one core: parse+scan {full:.0} msgs/s (parse {parse:.0}, of it mail-parser {mp:.0}; rules and findings {rules_only:.0})");
    let mut group = c.benchmark_group("content_scan");
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.bench_function("parse_and_scan_10k_corpus", |b| {
        b.iter(|| {
            for raw in &corpus {
                black_box(check.scan(&Parsed::parse(black_box(raw)), raw));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
