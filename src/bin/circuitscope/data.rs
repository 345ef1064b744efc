//! `circuitscope data`: generate a task's dataset as JSON lines.

use anyhow::{bail, Context};
use circuitscope::data::ioi::{self, NameList, PromptType};
use circuitscope::data::TaskSpec;
use circuitscope::tokenizer::Tokenizer;
use std::path::PathBuf;

const EXAMPLES: &str = "Examples:
  circuitscope data ioi --n 50 --seed 3 --prompt-type mixed --flip \"ABB->XYZ, BAB->XYZ\" \\
      --model models/gpt2-tokenizer --out ioi.jsonl
  circuitscope data ioi --prompt-type remix-baba --n 50 --flip IO --model gpt2 --out remix.jsonl
  circuitscope data ioi --template baba-0 --template abba-3 --n 20 --model gpt2 --out two.jsonl
  circuitscope data ioi --list-templates
  circuitscope data greater-than --n 100 --model models/gpt2-tokenizer --out gt.jsonl
  circuitscope data months --n 8 --model models/gpt2-tokenizer --out months.jsonl

Each output line holds prompt, tokens, positions (name -> index), answer and wrong token ids,
features, and, where there is a corruption, corrupted_prompt and corrupted_tokens.
The same options and seed give byte-identical output.";

/// Arguments of `circuitscope data`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct DataArgs {
    /// The task: ioi, induction, greater-than, digits, number-words, months, jsonl.
    #[arg(required_unless_present = "list_templates")]
    pub task: Option<String>,
    /// The model folder, shipped model or Hugging Face id; only its tokenizer.json is used.
    #[arg(long)]
    pub model: Option<String>,
    /// Where to write the JSON lines.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Number of prompts (default: the task's; ioi 100, induction 50, greater-than 100,
    /// sequences 8).
    #[arg(long)]
    pub n: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Prepend the BOS token (default: the task's; false for ioi and greater-than).
    #[arg(long)]
    pub prepend_bos: Option<bool>,
    /// IOI: prompt type (abba, baba, mixed, abc, bac, abc-mixed, baba-long, abba-long,
    /// baba-late, abba-late, baba-early, abba-early, remix-abba, remix-baba, remix-mixed).
    #[arg(long)]
    pub prompt_type: Option<String>,
    /// IOI: use these template ids (repeatable) instead of a prompt type.
    #[arg(long = "template")]
    pub template: Vec<String>,
    /// IOI: number of templates (0 = all; mixed: half of each order).
    #[arg(long, default_value_t = 0)]
    pub templates: usize,
    /// IOI: name list, paper (99) or arena (109).
    #[arg(long, default_value = "paper")]
    pub names: String,
    /// IOI: the corruption, e.g. IO, S, S1, S2, order, "IO->RAND", "S2->IO", prefix,
    /// "ABB->XYZ, BAB->XYZ".
    #[arg(long)]
    pub flip: Option<String>,
    /// IOI: print the template ids and texts, then exit.
    #[arg(long)]
    pub list_templates: bool,
    /// Induction: length of the random sequence (the prompt holds it twice).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Sequences: number of items shown before the one to predict.
    #[arg(long)]
    pub len: Option<usize>,
    /// JSONL: the input file.
    #[arg(long)]
    pub input: Option<String>,
}

/// Build the task specification the arguments describe.
#[allow(clippy::too_many_lines)] // one arm per task: each maps its flags onto its options
pub fn task_spec(args: &DataArgs) -> anyhow::Result<TaskSpec> {
    let name = args.task.as_deref().unwrap_or("ioi");
    let mut spec = TaskSpec::default_for(name)?;
    let ioi_only = args.prompt_type.is_some()
        || !args.template.is_empty()
        || args.templates != 0
        || args.flip.is_some()
        || args.names != "paper";
    if ioi_only && !matches!(spec, TaskSpec::Ioi(_)) {
        bail!(
            "--prompt-type, --template, --templates, --names and --flip are IOI options; \
             the {name} task always writes its own corruption"
        );
    }
    if args.seq_len.is_some() && !matches!(spec, TaskSpec::Induction(_)) {
        bail!("--seq-len is an induction option");
    }
    if args.len.is_some()
        && !matches!(
            spec,
            TaskSpec::Digits(_) | TaskSpec::NumberWords(_) | TaskSpec::Months(_)
        )
    {
        bail!("--len is an option of digits, number-words and months");
    }
    match &mut spec {
        TaskSpec::Ioi(o) => {
            if let Some(n) = args.n {
                o.n = n;
            }
            o.seed = args.seed;
            if let Some(b) = args.prepend_bos {
                o.prepend_bos = b;
            }
            if let Some(p) = &args.prompt_type {
                if !args.template.is_empty() {
                    bail!("give either --prompt-type or --template, not both");
                }
                o.prompt_type = p.parse()?;
            }
            if !args.template.is_empty() {
                o.prompt_type = PromptType::Templates(args.template.clone());
            }
            o.templates = args.templates;
            o.names = args.names.parse::<NameList>()?;
            o.flip = args.flip.clone();
        }
        TaskSpec::Induction(o) => {
            if let Some(n) = args.n {
                o.n = n;
            }
            o.seed = args.seed;
            if let Some(b) = args.prepend_bos {
                o.prepend_bos = b;
            }
            if let Some(l) = args.seq_len {
                o.seq_len = l;
            }
        }
        TaskSpec::GreaterThan(o) => {
            if let Some(n) = args.n {
                o.n = n;
            }
            o.seed = args.seed;
            if let Some(b) = args.prepend_bos {
                o.prepend_bos = b;
            }
        }
        TaskSpec::Digits(o) | TaskSpec::NumberWords(o) | TaskSpec::Months(o) => {
            if let Some(n) = args.n {
                o.n = n;
            }
            o.seed = args.seed;
            if let Some(b) = args.prepend_bos {
                o.prepend_bos = b;
            }
            if let Some(l) = args.len {
                o.len = l;
            }
        }
        TaskSpec::Jsonl(o) => {
            let Some(input) = &args.input else {
                bail!("the jsonl task needs --input FILE.jsonl");
            };
            o.path = input.clone();
            o.n = args.n.unwrap_or(0);
            o.prepend_bos = args.prepend_bos.unwrap_or(false);
        }
    }
    Ok(spec)
}

/// Run `circuitscope data`.
pub fn run(args: &DataArgs) -> anyhow::Result<()> {
    if args.list_templates {
        for id in ioi::template_ids() {
            println!("{id}\t{}", ioi::template_text(&id).unwrap_or_default());
        }
        return Ok(());
    }
    let spec = task_spec(args)?;
    let Some(model) = &args.model else {
        bail!("--model is required: a folder with tokenizer.json (e.g. models/gpt2-tokenizer)");
    };
    let Some(out) = &args.out else {
        bail!("--out FILE.jsonl is required");
    };
    let dir = circuitscope::model::resolve::resolve_model(model)?;
    let tok = Tokenizer::from_model_dir(&dir)?;
    circuitscope::memory::check_task(&spec, "--n")?;
    let ds = spec.build(&tok)?;
    circuitscope::error::write_atomic(out, ds.to_jsonl().as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "wrote {} {} examples to {}",
        ds.len(),
        spec.name(),
        out.display()
    );
    Ok(())
}
