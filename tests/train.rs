//! Training end to end on real exports: a tiny Gluformer trained for a few
//! steps on one person's Dexcom export, validated on another person's
//! Nightscout entries; the loss falls, the checkpoint loads and forecasts,
//! and `evaluate` scores it against the baselines on the same windows.

use std::path::Path;

use glurpc::model::{self, GluformerConfig, source};
use glurpc::train::eval::{EvalOptions, evaluate, evaluate_per_person};
use glurpc::train::{Quiet, TrainOptions, data, train};

fn people(file: &str) -> Vec<data::Person> {
    data::load_people(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/real")
            .join(file),
    )
    .unwrap()
}

fn tiny() -> TrainOptions {
    TrainOptions {
        model: GluformerConfig {
            d_model: 8,
            n_heads: 2,
            d_fcn: 16,
            num_enc_layers: 2,
            num_dec_layers: 1,
            mixture_samples: true,
            ..GluformerConfig::default()
        },
        learning_rate: 3e-3,
        batch_size: 8,
        samples: 2,
        epochs: 4,
        steps_per_epoch: Some(8),
        patience: 10,
        min_delta: 0.001,
        seed: 3,
        val_stride: 24,
        weights: Vec::new(),
        final_lr_fraction: 1.0,
    }
}

#[test]
fn a_tiny_model_learns_and_its_checkpoint_loads() {
    let train_people = people("dexcom_us_14d.csv");
    let val_people = people("nightscout_entries.json.gz");
    assert_eq!(train_people.len(), 1);
    assert!(train_people[0].positions().len() > 1000);
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny();
    let report = train(&train_people, &val_people, &opts, dir.path(), &mut Quiet).unwrap();

    assert_eq!(report.epochs.len(), 4);
    let first = report.epochs[0].train_loss;
    let last = report.epochs[3].train_loss;
    assert!(last < first - 0.5, "training loss {first} -> {last}");
    assert!(report.best_val_loss < report.epochs[0].val_loss + 1e-9);
    assert!(report.best_val_loss.is_finite());

    // The checkpoint is a model like any other: strict load, forecasts.
    let files = source::resolve_local(dir.path()).unwrap();
    let net = model::load(&files, &candle_core::Device::Cpu).unwrap();
    assert_eq!(net.config(), &opts.model);
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("training.json")).unwrap())
            .unwrap();
    assert_eq!(log["best_epoch"], report.best_epoch);

    let eval_opts = EvalOptions {
        stride: 31,
        samples: 10,
        seed: 0,
    };
    let scores = evaluate(&net, &val_people, &eval_opts).unwrap();
    assert!(scores.model.windows > 5);
    assert_eq!(scores.model.windows, scores.persistence.windows);
    for s in [&scores.model, &scores.persistence, &scores.linear] {
        assert!(s.rmse_60.is_finite() && s.rmse_60 >= s.mae_60 && s.mae_60 > 0.0);
    }
    let c90 = scores.model.coverage_90.unwrap();
    let c50 = scores.model.coverage_50.unwrap();
    assert!((0.0..=1.0).contains(&c90) && c50 <= c90, "{c50} {c90}");
    assert!(scores.linear.coverage_90.is_none());
    for s in [&scores.model, &scores.persistence, &scores.linear] {
        assert_eq!(s.per_step.len(), 12);
        for (t, step) in s.per_step.iter().enumerate() {
            assert_eq!(step.minutes as usize, 5 * (t + 1));
            assert!(step.rmse.is_finite() && step.rmse >= step.mae && step.mae > 0.0);
        }
        assert_eq!(s.per_step[5].rmse, s.rmse_30);
        assert_eq!(s.per_step[11].mae, s.mae_60);
        assert!(s.glucobench_rmse.is_finite() && s.glucobench_rmse >= s.glucobench_mae);
        assert!(s.glucobench_mae > 0.0);
        assert!(s.mard_60.is_finite() && s.mard_60 > 0.0 && s.mard_60 < 100.0);
        for c in [s.clarke_30, s.clarke_60] {
            let sum = c.a + c.b + c.c + c.d + c.e;
            assert!((sum - 1.0).abs() < 1e-9, "{c:?}");
            assert!(
                [c.a, c.b, c.c, c.d, c.e]
                    .iter()
                    .all(|f| (0.0..=1.0).contains(f))
            );
        }
    }
    let cal = scores.model.calibration_error.unwrap();
    assert!((0.0..=11.0).contains(&cal), "{cal}");
    for step in &scores.model.per_step {
        let (c50, c90) = (step.coverage_50.unwrap(), step.coverage_90.unwrap());
        assert!((0.0..=1.0).contains(&c90) && c50 <= c90, "{step:?}");
        assert!(step.width_90.unwrap() >= 0.0);
    }
    assert!(scores.persistence.calibration_error.is_none());
    assert!(scores.linear.per_step.iter().all(|s| s.width_90.is_none()));
    let json = serde_json::to_value(&scores).unwrap();
    assert_eq!(json["model"]["per_step"][11]["minutes"], 60);
    assert!(json["linear"]["per_step"][0]["coverage_90"].is_null());
    assert!(json["model"]["clarke_60"]["A"].is_number());
    // Same seed, same figures; the progress reported counts every window.
    assert_eq!(evaluate(&net, &val_people, &eval_opts).unwrap(), scores);
    let total = glurpc::train::eval::windows_to_score(&val_people, &eval_opts);
    assert_eq!(total, scores.model.windows);
    let mut seen = Vec::new();
    let reported = glurpc::train::eval::evaluate_reporting(
        &net,
        &val_people,
        &eval_opts,
        false,
        &mut |done| seen.push(done),
    )
    .unwrap();
    assert_eq!(reported.pooled, scores);
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    // Per person: the pooled figures are the same; the people share the windows.
    let mut both = val_people.clone();
    both.extend(people("dexcom_us_14d.csv"));
    let pooled = evaluate(&net, &both, &eval_opts).unwrap();
    let split = evaluate_per_person(&net, &both, &eval_opts).unwrap();
    assert_eq!(split.pooled, pooled);
    assert_eq!(split.per_person.len(), 2);
    assert_eq!(split.per_person[0].scores, scores);
    assert_eq!(split.per_person[1].person, "dexcom_us_14d.csv");
    let windows: usize = split
        .per_person
        .iter()
        .map(|p| p.scores.model.windows)
        .sum();
    assert_eq!(windows, pooled.model.windows);
    let json = serde_json::to_value(&split).unwrap();
    assert_eq!(json["per_person"][1]["person"], "dexcom_us_14d.csv");
    assert!(json["per_person"][1]["model"]["rmse_60"].is_number());
    assert!(json["pooled"]["linear"]["glucobench_rmse"].is_number());
}

#[test]
fn training_refuses_what_it_cannot_use() {
    let val_people = people("nightscout_entries.json.gz");
    let dir = tempfile::tempdir().unwrap();
    let mut opts = tiny();
    opts.model.len_pred = 6;
    let err = train(&val_people, &val_people, &opts, dir.path(), &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("len_pred"), "{err}");
    let short = people("nightscout_exporter.csv");
    let err = train(&short, &val_people, &tiny(), dir.path(), &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("training examples"), "{err}");
}

/// The differentiable ops give the served (fused) forward pass to float
/// rounding: training optimises the network that serves.
#[test]
fn autograd_ops_compute_the_served_forward_pass() {
    use glurpc::model::dropout::NoDropout;
    use glurpc::model::layers::Ops;
    use glurpc::model::{BatchNormMode, Gluformer, weights};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/model/small");
    let files = source::resolve_local(&dir).unwrap();
    let cfg = model::load_config(&files).unwrap();
    let dev = candle_core::Device::Cpu;
    let build = |ops| {
        Gluformer::build(
            weights::read(&files.weights).unwrap(),
            cfg.clone(),
            &dev,
            ops,
        )
        .unwrap()
    };
    let (fast, grad) = (build(Ops::Fast), build(Ops::Autograd));
    let ex = &people("dexcom_us_14d.csv")[0];
    let (r, end) = ex.positions()[500];
    let w = data::example(&ex.runs[r], end, 217, 1).unwrap().window;
    let inp = fast.inputs(&[w.clone(), w], &[0, 1]).unwrap();
    let run = |m: &Gluformer| {
        let (p, lv) = m
            .forward(&inp, BatchNormMode::Running, &mut NoDropout, None)
            .unwrap();
        let mut v = p.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.extend(lv.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        v
    };
    let (a, b) = (run(&fast), run(&grad));
    assert_eq!(a.len(), 26);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
}
