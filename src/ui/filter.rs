//! The table filter typed after `/`: space-separated terms that must all hold. A term is free
//! text (matched in id, label, phone, reason and last cause, ignoring case), `state=NAME`,
//! `state!=NAME`, or a comparison on `conflicts`, `attempt`, `disconnects` or `uptime`
//! (`conflicts>0`, `attempt>=3`, `uptime<90`).

use crate::session::status::{StateName, Status};

/// A parsed filter; `text` is what the operator typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub text: String,
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Text(String),
    State { state: StateName, equal: bool },
    Number { field: Field, op: Op, value: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Conflicts,
    Attempt,
    Disconnects,
    Uptime,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A term that looks like a comparison but cannot be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("`{0}` is not a state")]
    UnknownState(String),
    #[error("`{0}` needs a number")]
    NotANumber(String),
    #[error("`{0}`: states compare with = or != only")]
    StateOperator(String),
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            terms.push(parse_term(word)?);
        }
        Ok(Filter {
            text: text.trim().to_string(),
            terms,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, s: &Status) -> bool {
        self.terms.iter().all(|t| term_matches(t, s))
    }
}

fn parse_term(word: &str) -> Result<Term, FilterError> {
    // Longest operators first so `>=` is not read as `>`.
    for (token, op) in [
        ("!=", Op::Ne),
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("=", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
    ] {
        let Some((name, value)) = word.split_once(token) else {
            continue;
        };
        let field = match name.to_ascii_lowercase().as_str() {
            "state" => {
                let state = StateName::parse(&value.to_ascii_lowercase())
                    .ok_or_else(|| FilterError::UnknownState(value.to_string()))?;
                return match op {
                    Op::Eq | Op::Ne => Ok(Term::State {
                        state,
                        equal: op == Op::Eq,
                    }),
                    _ => Err(FilterError::StateOperator(word.to_string())),
                };
            }
            "conflicts" => Field::Conflicts,
            "attempt" | "attempts" => Field::Attempt,
            "disconnects" => Field::Disconnects,
            "uptime" => Field::Uptime,
            _ => break,
        };
        let value = value
            .trim_end_matches('%')
            .parse::<f64>()
            .map_err(|_| FilterError::NotANumber(word.to_string()))?;
        return Ok(Term::Number { field, op, value });
    }
    Ok(Term::Text(word.to_lowercase()))
}

fn contains_ignore_case(haystack: &str, needle_lower: &str) -> bool {
    haystack.to_lowercase().contains(needle_lower)
}

fn term_matches(term: &Term, s: &Status) -> bool {
    match term {
        Term::Text(t) => {
            contains_ignore_case(&s.id, t)
                || contains_ignore_case(&s.label, t)
                || s.account
                    .phone
                    .as_deref()
                    .is_some_and(|p| p.contains(t.as_str()))
                || contains_ignore_case(&s.reason, t)
                || s.last_cause
                    .as_deref()
                    .is_some_and(|c| contains_ignore_case(c, t))
        }
        Term::State { state, equal } => (s.state() == *state) == *equal,
        Term::Number { field, op, value } => {
            let x = match field {
                Field::Conflicts => f64::from(s.conflicts_1h),
                Field::Attempt => f64::from(s.attempt),
                Field::Disconnects => f64::from(s.disconnects_1h),
                Field::Uptime => s.uptime_pct,
            };
            match op {
                Op::Eq => x == *value,
                Op::Ne => x != *value,
                Op::Lt => x < *value,
                Op::Le => x <= *value,
                Op::Gt => x > *value,
                Op::Ge => x >= *value,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn status(id: &str, state: StateName, conflicts: u32) -> Status {
        let mut s = Status::new(id, format!("Line {id}"), Instant::now());
        s.phase = crate::ui::sample::phase_of(state, Instant::now());
        s.conflicts_1h = conflicts;
        s
    }

    #[test]
    fn terms_combine() {
        let f = Filter::parse("state=conflict conflicts>1").unwrap();
        assert!(f.matches(&status("a", StateName::Conflict, 2)));
        assert!(!f.matches(&status("b", StateName::Conflict, 1)));
        assert!(!f.matches(&status("c", StateName::Online, 5)));
    }

    #[test]
    fn text_matches_id_and_label_ignoring_case() {
        let f = Filter::parse("LINE sal").unwrap();
        assert!(f.matches(&status("sales-1", StateName::Online, 0)));
        assert!(!f.matches(&status("ops-1", StateName::Online, 0)));
    }

    #[test]
    fn typos_are_reported() {
        assert_eq!(
            Filter::parse("state=bakoff"),
            Err(FilterError::UnknownState("bakoff".into()))
        );
        assert_eq!(
            Filter::parse("conflicts>lots"),
            Err(FilterError::NotANumber("conflicts>lots".into()))
        );
    }
}
