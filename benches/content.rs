//! Content scan throughput with the shipped rules: parse once (mail-parser),
//! then every content rule and code finding, over a corpus of realistic
//! ~10 KB messages (newsletters, shop notifications, replies with
//! attachments). Target: >= 20,000 msgs/s per core.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smtpgate::checks::content::ContentCheck;
use smtpgate::message::Parsed;
use smtpgate::rules::load_dir;
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

fn scan(c: &mut Criterion) {
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
