//! Text templates with `{{name}}` placeholders: prose lives in a template file
//! (`include_str!`), the program supplies only the values.

use crate::error::{Error, Result};

/// Fill every `{{name}}` of `template` with its value. Every placeholder must have a value and
/// every value a placeholder (a typo on either side is an error, never silent text).
pub fn fill(template: &str, values: &[(&str, String)]) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut used = vec![false; values.len()];
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| Error::input(format!("template: unclosed '{{{{' before {after:.40}")))?;
        let name = &after[..end];
        let k = values
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or_else(|| Error::input(format!("template: no value for {{{{{name}}}}}")))?;
        used[k] = true;
        out.push_str(&values[k].1);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if let Some(k) = used.iter().position(|u| !u) {
        return Err(Error::input(format!(
            "template: the value '{}' has no placeholder",
            values[k].0
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn fills_repeated_placeholders_and_rejects_mismatches() {
        let v = [("a", "1".to_string()), ("b", "two".to_string())];
        assert_eq!(fill("x {{a}} y {{b}} {{a}}", &v).unwrap(), "x 1 y two 1");
        assert!(fill("{{a}} {{c}}", &v).is_err(), "unknown placeholder");
        assert!(fill("{{a}}", &v).is_err(), "unused value");
        assert!(fill("{{a", &v[..1]).is_err(), "unclosed placeholder");
        assert_eq!(fill("no placeholders", &[]).unwrap(), "no placeholders");
    }
}
