//! IOI generation: draw prompts from the selected templates and name lists with a seeded
//! generator, apply the flip, and build each row's example (tokens, named positions, answers,
//! features).

use super::flips::{apply_flip, fnv1a, parse_flip, pick, pick_other};
use super::prompt::{locate, render, tokenize, Instance};
use super::templates::{select_templates, Slot, Template};
use super::vocabulary::single_token_words;
use super::*;
use crate::data::dataset::{end_position, Dataset, Example};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Number of distinct prompts the templates can produce (saturating).
pub(super) fn distinct_prompts(
    templates: &[Template],
    names: usize,
    places: usize,
    objects: usize,
) -> u128 {
    let mut total: u128 = 0;
    for t in templates {
        let k = t.distinct_names();
        let mut c: u128 = 1;
        for i in 0..k {
            c = c.saturating_mul(names.saturating_sub(i) as u128);
        }
        if t.has(Slot::Place) {
            c = c.saturating_mul(places as u128);
        }
        if t.has(Slot::Object) {
            c = c.saturating_mul(objects as u128);
        }
        total = total.saturating_add(c);
    }
    total
}

/// Generate an IOI dataset: the templates and the words they need, distinct prompts drawn
/// from a seeded stream, then the examples with their corrupted prompts.
pub fn generate(opts: &IoiOptions, tok: &Tokenizer) -> Result<Dataset> {
    let templates = select_templates(opts)?;
    let flip = opts.flip.as_deref().map(parse_flip).transpose()?;
    if opts.n == 0 {
        return Err(Error::input("IOI: n is 0; ask for at least one prompt"));
    }
    let words = Words::of(opts, tok, &templates)?;
    let instances = draw_instances(opts, &templates, &words)?;
    let mut flip_rng = opts
        .flip
        .as_deref()
        .map(|f| ChaCha8Rng::seed_from_u64(opts.seed ^ fnv1a(f.trim())));
    let mut examples = Vec::with_capacity(instances.len());
    for inst in &instances {
        let t = &templates[inst.template];
        let mut ex = build_example(tok, t, inst, opts.prepend_bos)?;
        if let (Some(flip), Some(frng)) = (&flip, flip_rng.as_mut()) {
            let spec = opts.flip.as_deref().unwrap_or_default();
            let (pieces, cnames) = apply_flip(flip, spec, t, inst, &words.names, frng)?;
            let (ctext, _) = render(&pieces, &cnames, &inst.place, &inst.object);
            let (ctoks, _) = tokenize(tok, &ctext, opts.prepend_bos)?;
            ex.corrupted_prompt = Some(ctext);
            ex.corrupted_tokens = Some(ctoks);
        }
        examples.push(ex);
    }
    Ok(Dataset {
        task: "ioi".into(),
        examples,
    })
}

/// The single-token names, places and objects of a tokenizer.
struct Words {
    names: Vec<String>,
    places: Vec<String>,
    objects: Vec<String>,
}

impl Words {
    /// The words `templates` can use with `tok`; an error when they are too few for the
    /// templates or for `opts.n` distinct prompts.
    fn of(opts: &IoiOptions, tok: &Tokenizer, templates: &[Template]) -> Result<Words> {
        let names = single_token_words(tok, opts.names.names(), "names");
        let places = single_token_words(tok, &PLACES, "places");
        let objects = single_token_words(tok, &OBJECTS, "objects");
        let need_names = templates
            .iter()
            .map(Template::distinct_names)
            .max()
            .unwrap_or(2);
        if names.len() < need_names
            || (places.is_empty() && templates.iter().any(|t| t.has(Slot::Place)))
            || (objects.is_empty() && templates.iter().any(|t| t.has(Slot::Object)))
        {
            return Err(Error::input(format!(
                "IOI: too few single-token words with {}: {} names, {} places, {} objects; the \
                 templates need {need_names} distinct names and one place and object. Use a \
                 tokenizer whose vocabulary has these words",
                tok.source().display(),
                names.len(),
                places.len(),
                objects.len()
            )));
        }
        let available = distinct_prompts(templates, names.len(), places.len(), objects.len());
        if opts.n as u128 > available {
            return Err(Error::input(format!(
                "IOI: n = {} is larger than the {available} distinct prompts available from {} \
                 template(s), {} names, {} places and {} objects; lower n or use more templates",
                opts.n,
                templates.len(),
                names.len(),
                places.len(),
                objects.len()
            )));
        }
        Ok(Words {
            names,
            places,
            objects,
        })
    }
}

/// `opts.n` distinct prompts (by their text), drawn from the seeded stream.
fn draw_instances(
    opts: &IoiOptions,
    templates: &[Template],
    words: &Words,
) -> Result<Vec<Instance>> {
    let (names, places, objects) = (&words.names, &words.places, &words.objects);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut seen = BTreeSet::new();
    let mut instances = Vec::with_capacity(opts.n);
    while instances.len() < opts.n {
        let ti = rng.random_range(0..templates.len());
        let t = &templates[ti];
        let io = pick(&mut rng, names).clone();
        let s = pick_other(&mut rng, names, &[&io])?;
        let c = if t.distinct_names() >= 3 {
            Some(pick_other(&mut rng, names, &[&io, &s])?)
        } else {
            None
        };
        let place = pick(&mut rng, places).clone();
        let object = pick(&mut rng, objects).clone();
        let inst_names = t
            .letters
            .iter()
            .map(|l| match l {
                'A' => io.clone(),
                'B' => s.clone(),
                _ => c.clone().unwrap_or_default(),
            })
            .collect();
        let inst = Instance {
            template: ti,
            names: inst_names,
            io,
            s,
            c,
            place,
            object,
        };
        let (text, _) = render(&t.pieces, &inst.names, &inst.place, &inst.object);
        if seen.insert(text) {
            instances.push(inst);
        }
    }
    Ok(instances)
}

pub(super) fn build_example(
    tok: &Tokenizer,
    t: &Template,
    inst: &Instance,
    prepend_bos: bool,
) -> Result<Example> {
    let (text, spans) = render(&t.pieces, &inst.names, &inst.place, &inst.object);
    let (tokens, offsets) = tokenize(tok, &text, prepend_bos)?;
    let mut idx = Vec::with_capacity(spans.len());
    for (k, span) in spans.iter().enumerate() {
        match locate(&offsets, *span) {
            Some(i) => idx.push(i),
            None => {
                return Err(Error::input(format!(
                    "IOI template '{}': the name '{}' in {text:?} is not one token with {}; \
                     names must be single tokens where they stand",
                    t.id,
                    inst.names[k],
                    tok.source().display()
                )))
            }
        }
    }
    let pos = positions(tok, t, &idx, &tokens)?;
    let answer = tok.single_token(&format!(" {}", inst.io)).ok_or_else(|| {
        Error::input(format!(
            "IOI: the answer ' {}' is not one token with {}",
            inst.io,
            tok.source().display()
        ))
    })?;
    let wrong = tok.single_token(&format!(" {}", inst.s)).ok_or_else(|| {
        Error::input(format!(
            "IOI: the subject ' {}' is not one token with {}",
            inst.s,
            tok.source().display()
        ))
    })?;
    let features = features(t, inst);
    Ok(Example {
        prompt: text,
        tokens,
        positions: pos,
        answer: vec![answer],
        wrong: vec![wrong],
        features,
        corrupted_prompt: None,
        corrupted_tokens: None,
    })
}

/// The named positions of a prompt (`IO`, `S1`, `S2`, `END`, …), from its name tokens' indices
/// `idx` (one per name slot).
fn positions(
    tok: &Tokenizer,
    t: &Template,
    idx: &[usize],
    tokens: &[u32],
) -> Result<BTreeMap<String, usize>> {
    let a = t.occurrences('A');
    let b = t.occurrences('B');
    let io = idx[a[0]];
    let s1 = idx[b[0]];
    let s2 = idx[*b.last().unwrap_or(&b[0])];
    let end = end_position(tokens);
    let mut pos = BTreeMap::new();
    let mut put = |k: &str, v: usize| {
        pos.insert(k.to_string(), v);
    };
    put("IO", io);
    put("IO-1", io.saturating_sub(1));
    put("IO+1", io + 1);
    put("S1", s1);
    put("S1-1", s1.saturating_sub(1));
    put("S1+1", s1 + 1);
    put("S", s1);
    put("S-1", s1.saturating_sub(1));
    put("S+1", s1 + 1);
    put("S2", s2);
    put("end", end);
    put("END", end);
    put("starts", 0);
    if let Some(&c) = t.occurrences('C').first() {
        put("C", idx[c]);
    }
    let strs = tok.to_str_tokens(tokens)?;
    let last = |p: &str| strs.iter().rposition(|s| s.trim() == p);
    if let Some(p) = last(".").or_else(|| last(",")) {
        put("punct", p);
    }
    Ok(pos)
}

/// The features of a prompt, for conditional sampling.
fn features(t: &Template, inst: &Instance) -> BTreeMap<String, String> {
    let mut features = BTreeMap::new();
    features.insert("template".to_string(), t.id.clone());
    features.insert("order".to_string(), t.order());
    features.insert("IO".to_string(), inst.io.clone());
    features.insert("S".to_string(), inst.s.clone());
    if let Some(c) = &inst.c {
        features.insert("C".to_string(), c.clone());
    }
    if t.has(Slot::Place) {
        features.insert("place".to_string(), inst.place.clone());
    }
    if t.has(Slot::Object) {
        features.insert("object".to_string(), inst.object.clone());
    }
    features
}
