use candle_core::{Device, Tensor};
use circuitscope::data::{Dataset, Example};
use circuitscope::metric::{mean, std_err, Metric};
use std::collections::BTreeMap;

fn ds(rows: &[(&[u32], &[u32])]) -> Dataset {
    Dataset {
        task: "toy".into(),
        examples: rows
            .iter()
            .map(|(a, w)| Example {
                prompt: "x".into(),
                tokens: vec![0],
                positions: BTreeMap::from([("END".to_string(), 0)]),
                answer: a.to_vec(),
                wrong: w.to_vec(),
                features: BTreeMap::new(),
                corrupted_prompt: None,
                corrupted_tokens: None,
            })
            .collect(),
    }
}

fn logits() -> Tensor {
    Tensor::new(
        &[[1.0f32, 2.0, 3.0, 0.0], [0.5, 0.5, -1.0, 2.0]],
        &Device::Cpu,
    )
    .unwrap()
}

fn lsm(row: &[f64]) -> Vec<f64> {
    let lse = row.iter().map(|x| x.exp()).sum::<f64>().ln();
    row.iter().map(|x| x - lse).collect()
}

#[test]
fn logit_diff_with_sets() {
    let d = ds(&[(&[2], &[0, 1]), (&[3], &[2])]);
    let v = Metric::LogitDiff
        .per_example(&logits(), &d, None, None)
        .unwrap();
    assert!((v[0] - (3.0 - 1.5)).abs() < 1e-12);
    assert!((v[1] - 3.0).abs() < 1e-12);
    let n = Metric::NormLogitDiff
        .per_example(&logits(), &d, None, Some((3.0, 1.0)))
        .unwrap();
    assert!((n[0] - 0.25).abs() < 1e-12);
    assert!((n[1] - 1.0).abs() < 1e-12);
    assert!(Metric::NormLogitDiff
        .per_example(&logits(), &d, None, None)
        .is_err());
}

#[test]
fn probabilities_nll_accuracy() {
    let d = ds(&[(&[2], &[0]), (&[0, 1], &[3])]);
    let l = logits();
    let r0 = lsm(&[1.0, 2.0, 3.0, 0.0]);
    let r1 = lsm(&[0.5, 0.5, -1.0, 2.0]);
    let nll = Metric::Nll.per_example(&l, &d, None, None).unwrap();
    assert!((nll[0] + r0[2]).abs() < 1e-9);
    assert!((nll[1] + r1[0]).abs() < 1e-9);
    let p = Metric::Prob.per_example(&l, &d, None, None).unwrap();
    assert!((p[1] - (r1[0].exp() + r1[1].exp())).abs() < 1e-9);
    let pd = Metric::ProbDiff.per_example(&l, &d, None, None).unwrap();
    assert!((pd[0] - (r0[2].exp() - r0[0].exp())).abs() < 1e-9);
    let acc = Metric::Accuracy.per_example(&l, &d, None, None).unwrap();
    assert_eq!(acc, vec![1.0, 0.0]);
}

#[test]
fn kl_to_clean() {
    let d = ds(&[(&[0], &[]), (&[0], &[])]);
    let l = logits();
    let same = Metric::Kl.per_example(&l, &d, Some(&l), None).unwrap();
    assert!(same.iter().all(|x| x.abs() < 1e-12));
    let other = Tensor::new(
        &[[0.0f64, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
        &Device::Cpu,
    )
    .unwrap();
    let kl = Metric::Kl.per_example(&other, &d, Some(&l), None).unwrap();
    let lc = lsm(&[1.0, 2.0, 3.0, 0.0]);
    let want: f64 = lc.iter().map(|a| a.exp() * (a - (0.25f64).ln())).sum();
    assert!((kl[0] - want).abs() < 1e-9);
    assert!(kl[0] > 0.0);
    assert!(Metric::Kl.per_example(&l, &d, None, None).is_err());
}

#[test]
fn bad_inputs_are_errors() {
    let d = ds(&[(&[2], &[]), (&[9], &[0])]);
    let e = Metric::Nll
        .per_example(&logits(), &d, None, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 1") && e.contains("token 9"), "{e}");
    let d = ds(&[(&[2], &[]), (&[1], &[])]);
    let e = Metric::LogitDiff
        .per_example(&logits(), &d, None, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no wrong token"), "{e}");
    let d3 = ds(&[(&[2], &[0])]);
    assert!(Metric::Nll.per_example(&logits(), &d3, None, None).is_err());
}

#[test]
fn names_and_reductions() {
    assert_eq!("logit-diff".parse::<Metric>().unwrap(), Metric::LogitDiff);
    assert_eq!("prob_diff".parse::<Metric>().unwrap(), Metric::ProbDiff);
    let e = "bogus".parse::<Metric>().unwrap_err().to_string();
    assert!(
        e.contains("norm-logit-diff") && e.contains("accuracy"),
        "{e}"
    );
    for m in Metric::ALL {
        assert_eq!(m.to_string().parse::<Metric>().unwrap(), m);
    }
    assert!(!Metric::Kl.higher_is_better());
    assert!(!Metric::Nll.higher_is_better());
    assert!(Metric::LogitDiff.higher_is_better());
    assert_eq!(mean(&[1.0, 2.0, 3.0]), 2.0);
    assert!((std_err(&[1.0, 2.0, 3.0]) - 1.0 / 3f64.sqrt()).abs() < 1e-12);
    assert_eq!(std_err(&[5.0]), 0.0);
    assert!(mean(&[]).is_nan());
}
