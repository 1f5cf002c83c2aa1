//! Plot module against the reference: gluRPC 0.6.3's own `calculate_plot_data` on fixed
//! windows (`tools/make_plot_goldens.py`, files under `tests/data/plot/`), the verified
//! example figure, the compact JSON, and bad input in every format (the PNG and SVG charts
//! are checked in `tests/chart_render.rs` and `tests/charts.rs`).

mod common;

use glurpc::plot::{self, Clock, PlotData, PlotError, PlotFormat, Units};
use plot_json::{Node, parse};

const CASES: [&str; 3] = ["regular", "irregular", "many"];

fn plot_dir() -> std::path::PathBuf {
    common::data_dir().join("plot")
}

fn numbers(n: &Node) -> Vec<f64> {
    n.arr().iter().map(Node::num).collect()
}

fn ints(n: &Node) -> Vec<i64> {
    n.arr().iter().map(|x| x.num() as i64).collect()
}

/// The window of a case as the engine hands it over.
fn input(case: &str) -> PlotData {
    let text = std::fs::read_to_string(plot_dir().join(format!("{case}.input.json"))).unwrap();
    let v = parse(&text);
    PlotData {
        handle: v.get("handle").str().to_string(),
        index: v.get("index").num() as i64,
        history_times: ints(v.get("history_times")),
        history: numbers(v.get("history")),
        forecast_times: ints(v.get("forecast_times")),
        samples: v.get("samples").arr().iter().map(numbers).collect(),
        actual: match v.get("actual") {
            Node::Null => None,
            a => Some(numbers(a)),
        },
        warnings: vec![],
        units: Units::MgDl,
        clock: Clock::Unknown,
    }
}

fn reference(case: &str) -> Node {
    parse(&common::gunzip(
        &plot_dir().join(format!("{case}.reference.json.gz")),
    ))
}

fn step(data: &PlotData, p: usize) -> Vec<f64> {
    data.samples.iter().map(|s| s[p]).collect()
}

#[test]
fn plotly_figure_equals_the_reference() {
    for case in CASES {
        let data = input(case);
        let reference = reference(case);
        let want = reference.get("figure").str();
        let ours = plot::plotly_json(&data);
        let mut cmp = plot_json::Compare::default();
        cmp.node(&parse(&ours), &parse(want), "$");
        println!(
            "{case}: {} bytes (ref {}), byte-identical {}, max rel number diff {:e}, \
             max time diff {} us over {} strings",
            ours.len(),
            want.len(),
            ours == want,
            cmp.max_rel,
            cmp.max_us,
            cmp.strings
        );
        assert!(cmp.diffs.is_empty(), "{case}: {:#?}", cmp.diffs);
        assert!(cmp.max_rel <= 1e-9, "{case}: {}", cmp.max_rel);
        assert!(cmp.max_us <= 1, "{case}: {} us", cmp.max_us);
        // S = 10: OpenBLAS sums the covariance in order, so every byte is reproducible.
        if data.samples.len() < 16 {
            assert!(
                ours == want,
                "{case}: {}",
                common::first_difference(&ours.replace(',', ",\n"), &want.replace(',', ",\n"))
            );
        }
    }
}

#[test]
fn plotly_structure_matches_the_verified_example() {
    let example = parse(&common::gunzip(
        &plot_dir().join("reference_plot_example.json.gz"),
    ));
    let ours = parse(&plot::plotly_json(&input("regular")));
    assert_eq!(ours.keys(), example.keys());
    let (od, ed) = (ours.get("data").arr(), example.get("data").arr());
    assert_eq!(ed.len(), 14);
    // fans, then "True Values", then "Median Forecast", each with the example's keys and constants
    let fan_keys = ed[0].keys();
    for t in &od[..od.len() - 2] {
        assert_eq!(t.keys(), fan_keys);
        for k in ["fill", "hoverinfo", "line", "showlegend", "type"] {
            assert_eq!(t.get(k), ed[0].get(k), "{k}");
        }
        assert_eq!(t.get("x").arr().len(), 400);
        assert_eq!(t.get("y").arr().len(), 400);
    }
    for (o, e) in od[od.len() - 2..].iter().zip(&ed[12..]) {
        assert_eq!(o.keys(), e.keys());
        for k in ["line", "marker", "mode", "name", "type"] {
            assert_eq!(o.get(k), e.get(k), "{k}");
        }
        assert_eq!(o.get("x").arr().len(), e.get("x").arr().len());
    }
    let (ol, el) = (ours.get("layout"), example.get("layout"));
    assert_eq!(ol.keys(), el.keys());
    assert_eq!(ol.get("template"), el.get("template"));
    for k in ["title", "yaxis", "width", "height"] {
        assert_eq!(ol.get(k), el.get(k), "{k}");
    }
    let (ox, ex) = (ol.get("xaxis"), el.get("xaxis"));
    assert_eq!(ox.keys(), ex.keys());
    for k in ["title", "dtick", "tickformat", "gridcolor", "showgrid"] {
        assert_eq!(ox.get(k), ex.get(k), "{k}");
    }
    // the raw template text is the example's, byte for byte
    let raw = common::gunzip(&plot_dir().join("reference_plot_example.json.gz"));
    let ours_raw = plot::plotly_json(&input("regular"));
    let template = |s: &str| {
        let i = s.find("\"template\":").unwrap();
        let j = s.find(",\"xaxis\":{\"title\"").unwrap();
        s[i..j].to_string()
    };
    assert_eq!(template(&ours_raw), template(&raw));
}

#[test]
fn kde_fans_match_scipy() {
    let mut worst = (0.0f64, 0.0f64);
    for case in CASES {
        let data = input(case);
        let reference = reference(case);
        let fans = reference.get("fans").arr();
        let skipped: Vec<usize> = ints(reference.get("skipped_steps"))
            .iter()
            .map(|&p| p as usize)
            .collect();
        for p in 0..12 {
            let ours = plot::kde_fan(&step(&data, p));
            let Some(fan) = fans.iter().find(|f| f.get("step").num() as usize == p) else {
                assert!(skipped.contains(&p) && ours.is_none(), "{case} step {p}");
                continue;
            };
            let (grid, density) = ours.unwrap_or_else(|| panic!("{case} step {p} skipped"));
            let (rg, rd) = (numbers(fan.get("grid")), numbers(fan.get("density")));
            assert_eq!(grid.len(), rg.len());
            for (a, b) in grid.iter().zip(&rg) {
                worst.0 = worst.0.max(((a - b) / b).abs());
            }
            for (a, b) in density.iter().zip(&rd) {
                worst.1 = worst.1.max((a - b).abs());
            }
            if data.samples.len() < 16 {
                assert_eq!(grid, rg, "{case} step {p}: grid");
                assert_eq!(density, rd, "{case} step {p}: density");
            }
        }
    }
    println!(
        "KDE: max grid rel diff {:e}, max density diff {:e}",
        worst.0, worst.1
    );
    assert!(worst.0 <= 1e-12 && worst.1 <= 1e-9, "{worst:?}");
    // the narrow step: kept, but its KDE underflows to zero everywhere (no width)
    let irregular = input("irregular");
    let (_, density) = plot::kde_fan(&step(&irregular, 3)).expect("narrow step kept");
    assert!(density.iter().all(|&d| d == 0.0));
}

#[test]
fn quantiles_equal_numpy() {
    for case in CASES {
        let data = input(case);
        let reference = reference(case);
        let median = numbers(reference.get("median"));
        for (p, want_median) in median.iter().enumerate() {
            let s = step(&data, p);
            assert_eq!(plot::median(&s), *want_median, "{case} step {p}");
            for q in ["0.05", "0.25", "0.5", "0.75", "0.95"] {
                let want = numbers(reference.get("quantiles").get(q))[p];
                let level: f64 = q.parse().unwrap();
                assert_eq!(plot::quantile(&s, level), want, "{case} step {p} q {q}");
            }
        }
    }
}

#[test]
fn float_repr_matches_python() {
    let text = std::fs::read_to_string(plot_dir().join("python_formatting.json")).unwrap();
    let v = parse(&text);
    for s in v.get("float_repr").arr() {
        let want = s.str();
        assert_eq!(plot::py_float_repr(want.parse().unwrap()), want);
    }
}

/// One history point, two steps, two samples.
fn tiny_window() -> PlotData {
    PlotData {
        handle: "tiny".into(),
        index: 0,
        history_times: vec![0],
        history: vec![100.0],
        forecast_times: vec![300_000, 600_000],
        samples: vec![vec![100.0, 110.0], vec![104.0, 95.0]],
        actual: None,
        warnings: vec![],
        units: Units::MgDl,
        clock: Clock::Unknown,
    }
}

#[test]
fn compact_json_fields() {
    let data = input("regular");
    let text = String::from_utf8(plot::render(&data, PlotFormat::Json).unwrap()).unwrap();
    let v = parse(&text);
    assert_eq!(
        v.keys(),
        [
            "handle",
            "index",
            "forecast_times",
            "median",
            "quantiles",
            "samples",
            "history_times",
            "history",
            "actual",
            "warnings",
            "display_units",
            "clock",
            "notes"
        ]
    );
    assert_eq!(v.get("display_units").str(), data.units.label());
    assert_eq!(v.get("clock").str(), data.clock.name());
    assert!(v.get("notes").arr().is_empty());
    assert_eq!(v.get("handle").str(), data.handle);
    assert_eq!(v.get("forecast_times").arr().len(), 12);
    assert_eq!(
        v.get("forecast_times").arr()[0].str(),
        "2024-05-01T08:00:00"
    );
    assert_eq!(v.get("history_times").arr().len(), 96);
    assert_eq!(numbers(v.get("history")), data.history);
    assert_eq!(v.get("samples").arr().len(), 10);
    assert!(v.get("samples").arr().iter().all(|s| s.arr().len() == 12));
    assert_eq!(
        v.get("quantiles").keys(),
        ["0.05", "0.25", "0.5", "0.75", "0.95"]
    );
    let reference = reference("regular");
    for q in ["0.05", "0.25", "0.5", "0.75", "0.95"] {
        assert_eq!(
            numbers(v.get("quantiles").get(q)),
            numbers(reference.get("quantiles").get(q))
        );
    }
    assert_eq!(numbers(v.get("median")), numbers(reference.get("median")));
    assert_eq!(numbers(v.get("actual")), data.actual.clone().unwrap());
    assert!(v.get("warnings").arr().is_empty());

    let forward = PlotData {
        actual: None,
        warnings: vec!["gaps".into()],
        ..data
    };
    let v = parse(&plot::compact_json(&forward));
    assert_eq!(*v.get("actual"), Node::Null);
    assert_eq!(v.get("warnings").arr()[0].str(), "gaps");
    // an unknown message is passed on in plain words as it is
    assert_eq!(v.get("notes").arr()[0].str(), "gaps");
    // the forward Plotly figure: 12 history points in "True Values", 13 in the median
    let fig = parse(&plot::plotly_json(&forward));
    let traces = fig.get("data").arr();
    assert_eq!(traces[traces.len() - 2].get("x").arr().len(), 12);
    assert_eq!(traces[traces.len() - 1].get("x").arr().len(), 13);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let good = input("regular");
    let mut cases: Vec<(&str, PlotData)> = Vec::new();
    let mut d = good.clone();
    d.history.pop();
    cases.push(("short history", d));
    let mut d = good.clone();
    d.samples[2].push(1.0);
    cases.push(("long sample", d));
    let mut d = good.clone();
    d.samples.clear();
    cases.push(("no samples", d));
    let mut d = good.clone();
    d.actual = Some(vec![100.0; 11]);
    cases.push(("short actual", d));
    let mut d = good.clone();
    d.samples[0][5] = f64::NAN;
    cases.push(("NaN sample", d));
    let mut d = good.clone();
    d.history[7] = f64::INFINITY;
    cases.push(("infinite history", d));
    let mut d = good.clone();
    d.actual.as_mut().unwrap()[0] = f64::NAN;
    cases.push(("NaN actual", d));
    let mut d = good.clone();
    d.history.clear();
    d.history_times.clear();
    cases.push(("empty history", d));
    let mut d = good.clone();
    d.forecast_times.clear();
    cases.push(("no forecast times", d));
    let mut d = good.clone();
    d.forecast_times[3] = i64::MIN;
    cases.push(("time out of range", d));
    for (name, d) in &cases {
        for format in [
            PlotFormat::Plotly,
            PlotFormat::Png,
            PlotFormat::Svg,
            PlotFormat::Json,
        ] {
            let r = plot::render(d, format);
            assert!(r.is_err(), "{name} {format}");
        }
        // the unchecked entry points do not panic either
        let _ = plot::plotly_json(d);
        let _ = plot::compact_json(d);
        let _ = plot::png(d);
        let _ = plot::svg(d);
    }
    assert!(matches!(
        plot::render(&cases[2].1, PlotFormat::Png),
        Err(PlotError::NoSamples)
    ));
    assert!(matches!(
        plot::render(&cases[4].1, PlotFormat::Json),
        Err(PlotError::NonFinite { .. })
    ));
    assert!(matches!(
        plot::render(&cases[0].1, PlotFormat::Plotly),
        Err(PlotError::Length { .. })
    ));
}

#[test]
fn one_sample_and_flat_windows_render() {
    // a single sample: no fan survives (std 0), the lines still draw
    let mut d = input("regular");
    d.samples.truncate(1);
    let fig = parse(&String::from_utf8(plot::render(&d, PlotFormat::Plotly).unwrap()).unwrap());
    assert_eq!(fig.get("data").arr().len(), 2);
    assert!(plot::render(&d, PlotFormat::Png).is_ok());
    assert!(plot::render(&d, PlotFormat::Svg).is_ok());
    // a tiny window with one history point
    assert!(plot::render(&tiny_window(), PlotFormat::Png).is_ok());
}

/// A JSON reader that keeps key order and each number's text (serde_json without
/// `preserve_order` sorts keys, and its default float parsing is not always correctly
/// rounded), plus a tolerant tree comparison.
mod plot_json {
    use chrono::NaiveDateTime;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Node {
        Null,
        Bool(bool),
        /// The value (Rust's correctly rounded parse) and the text as written.
        Num(f64, String),
        Str(String),
        Arr(Vec<Node>),
        Obj(Vec<(String, Node)>),
    }

    impl Node {
        pub fn get(&self, key: &str) -> &Node {
            match self {
                Node::Obj(kv) => kv
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("no key {key}")),
                _ => panic!("not an object: {key}"),
            }
        }
        pub fn keys(&self) -> Vec<&str> {
            match self {
                Node::Obj(kv) => kv.iter().map(|(k, _)| k.as_str()).collect(),
                _ => panic!("not an object"),
            }
        }
        pub fn arr(&self) -> &[Node] {
            match self {
                Node::Arr(a) => a,
                other => panic!("not an array: {other:?}"),
            }
        }
        pub fn str(&self) -> &str {
            match self {
                Node::Str(s) => s,
                other => panic!("not a string: {other:?}"),
            }
        }
        pub fn num(&self) -> f64 {
            match self {
                Node::Num(x, _) => *x,
                other => panic!("not a number: {other:?}"),
            }
        }
    }

    pub fn parse(text: &str) -> Node {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing text");
        v
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn eat(&mut self, lit: &str) -> bool {
            let ok = self.s[self.i..].starts_with(lit.as_bytes());
            if ok {
                self.i += lit.len();
            }
            ok
        }
        fn value(&mut self) -> Node {
            self.ws();
            let c = self.s[self.i];
            match c {
                b'{' => {
                    self.i += 1;
                    let mut kv = Vec::new();
                    self.ws();
                    if !self.eat("}") {
                        loop {
                            self.ws();
                            let k = self.string();
                            self.ws();
                            assert!(self.eat(":"), "colon at {}", self.i);
                            kv.push((k, self.value()));
                            self.ws();
                            if self.eat("}") {
                                break;
                            }
                            assert!(self.eat(","), "comma at {}", self.i);
                        }
                    }
                    Node::Obj(kv)
                }
                b'[' => {
                    self.i += 1;
                    let mut a = Vec::new();
                    self.ws();
                    if !self.eat("]") {
                        loop {
                            a.push(self.value());
                            self.ws();
                            if self.eat("]") {
                                break;
                            }
                            assert!(self.eat(","), "comma at {}", self.i);
                        }
                    }
                    Node::Arr(a)
                }
                b'"' => Node::Str(self.string()),
                b'n' if self.eat("null") => Node::Null,
                b't' if self.eat("true") => Node::Bool(true),
                b'f' if self.eat("false") => Node::Bool(false),
                _ => {
                    let start = self.i;
                    while self.i < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.i]) {
                        self.i += 1;
                    }
                    let raw = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                    Node::Num(raw.parse().expect(raw), raw.to_string())
                }
            }
        }
        fn string(&mut self) -> String {
            assert!(self.eat("\""));
            let mut units: Vec<u16> = Vec::new();
            let mut out = String::new();
            let flush = |units: &mut Vec<u16>, out: &mut String| {
                out.push_str(&String::from_utf16(units).unwrap());
                units.clear();
            };
            loop {
                let c = self.s[self.i];
                self.i += 1;
                match c {
                    b'"' => break,
                    b'\\' => {
                        let e = self.s[self.i];
                        self.i += 1;
                        let simple = match e {
                            b'n' => Some('\n'),
                            b't' => Some('\t'),
                            b'r' => Some('\r'),
                            b'b' => Some('\u{8}'),
                            b'f' => Some('\u{c}'),
                            b'u' => None,
                            other => Some(other as char),
                        };
                        match simple {
                            Some(ch) => {
                                flush(&mut units, &mut out);
                                out.push(ch);
                            }
                            None => {
                                let hex = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                                units.push(u16::from_str_radix(hex, 16).unwrap());
                                self.i += 4;
                            }
                        }
                    }
                    _ => {
                        flush(&mut units, &mut out);
                        // copy one UTF-8 character
                        let start = self.i - 1;
                        let mut end = self.i;
                        while end < self.s.len() && (self.s[end] & 0xC0) == 0x80 {
                            end += 1;
                        }
                        out.push_str(std::str::from_utf8(&self.s[start..end]).unwrap());
                        self.i = end;
                    }
                }
            }
            flush(&mut units, &mut out);
            out
        }
    }

    /// Differences of two trees: key order, lengths and text exactly; numbers by
    /// relative difference; ISO times by microseconds.
    #[derive(Default)]
    pub struct Compare {
        pub diffs: Vec<String>,
        pub max_rel: f64,
        pub max_us: i64,
        pub strings: usize,
    }

    fn iso(s: &str) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
    }

    impl Compare {
        fn diff(&mut self, msg: String) {
            if self.diffs.len() < 20 {
                self.diffs.push(msg);
            }
        }
        pub fn node(&mut self, a: &Node, b: &Node, path: &str) {
            match (a, b) {
                (Node::Obj(x), Node::Obj(y)) => {
                    let (kx, ky) = (a.keys(), b.keys());
                    if kx != ky {
                        self.diff(format!("{path}: keys {kx:?} vs {ky:?}"));
                        return;
                    }
                    for ((k, va), (_, vb)) in x.iter().zip(y) {
                        self.node(va, vb, &format!("{path}.{k}"));
                    }
                }
                (Node::Arr(x), Node::Arr(y)) => {
                    if x.len() != y.len() {
                        self.diff(format!("{path}: length {} vs {}", x.len(), y.len()));
                        return;
                    }
                    for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                        self.node(va, vb, &format!("{path}[{i}]"));
                    }
                }
                (Node::Num(x, rx), Node::Num(y, ry)) => {
                    let is_int = |r: &str| !r.contains(['.', 'e', 'E']);
                    if is_int(rx) != is_int(ry) {
                        self.diff(format!("{path}: number form {rx} vs {ry}"));
                    }
                    let rel = if x == y { 0.0 } else { (x - y).abs() / y.abs() };
                    self.max_rel = self.max_rel.max(rel);
                }
                (Node::Str(x), Node::Str(y)) => {
                    self.strings += 1;
                    if x != y {
                        match (iso(x), iso(y)) {
                            (Some(tx), Some(ty)) => {
                                let us = (tx - ty).num_microseconds().unwrap_or(i64::MAX).abs();
                                self.max_us = self.max_us.max(us);
                            }
                            _ => self.diff(format!("{path}: {x:?} vs {y:?}")),
                        }
                    }
                }
                _ if a == b => {}
                _ => self.diff(format!("{path}: {a:?} vs {b:?}")),
            }
        }
    }
}
