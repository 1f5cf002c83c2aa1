//! Training end to end on real exports: a tiny Gluformer trained for a few
//! steps on one person's Dexcom export, validated on another person's
//! Nightscout entries; the loss falls, the checkpoint loads and forecasts,
//! and `evaluate` scores it against the baselines on the same windows.

use std::path::Path;

use glurpc::model::{self, GluformerConfig, source};
use glurpc::train::eval::{EvalOptions, evaluate};
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
    // Same seed, same figures.
    assert_eq!(evaluate(&net, &val_people, &eval_opts).unwrap(), scores);
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
