//! Shared helpers of the analysis tests: the gpt2-tiny patching fixture made by
//! `scripts/make_fixtures.py` (TransformerLens 3.9 in float64).
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use circuitscope::analysis::{LabelledArray, Setup};
use circuitscope::metric::Metric;
use circuitscope::model::Model;
use std::collections::HashMap;
use std::path::PathBuf;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tiny")
}

pub struct Fixture {
    pub model: Model,
    pub tensors: HashMap<String, Tensor>,
    pub clean: Vec<Vec<u32>>,
    pub corrupted: Vec<Vec<u32>>,
    pub answers: Vec<(u32, u32)>,
}

fn rows(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec2::<i64>()
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(|x| x as u32).collect())
        .collect()
}

pub fn load(dtype: DType) -> Fixture {
    let dir = fixture_dir();
    let model = Model::load(&dir, dtype).unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("patching.safetensors"), &Device::Cpu).unwrap();
    let clean = rows(&tensors["clean_tokens"]);
    let corrupted = rows(&tensors["corrupted_tokens"]);
    let answers = rows(&tensors["answers"])
        .into_iter()
        .map(|r| (r[0], r[1]))
        .collect();
    Fixture {
        model,
        tensors,
        clean,
        corrupted,
        answers,
    }
}

impl Fixture {
    pub fn setup(&self) -> Setup<'_> {
        Setup::from_tokens(
            &self.model,
            &self.clean,
            &self.corrupted,
            &self.answers,
            Metric::LogitDiff,
        )
        .unwrap()
    }

    pub fn expected(&self, key: &str) -> (Vec<usize>, Vec<f64>) {
        let t = &self.tensors[key];
        (
            t.dims().to_vec(),
            t.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap(),
        )
    }

    pub fn scalar(&self, key: &str) -> f64 {
        self.tensors[key]
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }
}

/// Largest absolute difference between a sweep and a fixture tensor of the same shape.
pub fn max_diff(sweep: &LabelledArray, expected: &(Vec<usize>, Vec<f64>)) -> f64 {
    assert_eq!(sweep.shape(), expected.0, "{}: shape", sweep.name);
    sweep
        .values
        .iter()
        .zip(&expected.1)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}
