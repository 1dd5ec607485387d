//! Typed reads from the spanned TOML tree: each read either yields a value or records a
//! problem at the offending key or value, so one pass finds every problem.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration::parse_duration;
use super::error::{ConfigError, ConfigErrors, Hint, Position, Problem, closest};

pub(super) type Span = Range<usize>;
pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// Problems found so far, each at a byte offset of the text.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<(usize, ConfigError)>);

impl Problems {
    pub(super) fn report(&mut self, span: &Span, error: ConfigError) {
        self.0.push((span.start, error));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn into_errors(self, text: &str, file: &str) -> ConfigErrors {
        let problems = self
            .0
            .into_iter()
            .map(|(offset, error)| Problem {
                position: Some(Position::of_offset(text, offset)),
                error,
            })
            .collect();
        ConfigErrors::new(file, problems)
    }
}

/// How a value is described after "found" in a message: `integer 60`, `string "5x"`.
pub(super) fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("string {s:?}"),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("number {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("date {d}"),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

/// The value of a TOML integer, if it fits in an i64.
fn integer_value(value: &DeValue<'_>) -> Option<Result<i64, String>> {
    let integer = value.as_integer()?;
    Some(i64::from_str_radix(integer.as_str(), integer.radix()).map_err(|_| integer.to_string()))
}

/// A table being read, and the words that name it in messages ("[policy]",
/// "session \"sales-1\"").
pub(super) struct Table<'a, 'i> {
    pub(super) entries: &'a DeTable<'i>,
    pub(super) span: Span,
    pub(super) place: String,
}

impl<'a, 'i> Table<'a, 'i> {
    /// "KEY in PLACE", the subject of every message about one key.
    pub(super) fn field(&self, key: &str) -> String {
        format!("{key} in {}", self.place)
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.entries.get(key)
    }

    /// Reports every key that is not in `known`, with a typo suggestion or the table the
    /// key belongs to (`home_of`).
    pub(super) fn check_keys(
        &self,
        problems: &mut Problems,
        known: &[&str],
        home_of: impl Fn(&str) -> Option<&'static str>,
    ) {
        for (key, _) in self.entries.iter() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = match (closest(name, known), home_of(name)) {
                (Some(close), _) => Hint::DidYouMean(close.to_string()),
                (None, Some(home)) => Hint::BelongsIn(home.to_string()),
                (None, None) => Hint::None,
            };
            problems.report(
                &key.span(),
                ConfigError::UnknownKey {
                    key: name.to_string(),
                    place: self.place.clone(),
                    hint,
                },
            );
        }
    }

    fn wrong_type(
        &self,
        problems: &mut Problems,
        key: &str,
        value: &Value<'_>,
        expected: &'static str,
    ) {
        problems.report(
            &value.span(),
            ConfigError::WrongType {
                field: self.field(key),
                expected,
                found: describe(value.get_ref()),
            },
        );
    }

    /// A string value, if present and a string.
    pub(super) fn string(&self, problems: &mut Problems, key: &str) -> Option<(&'a str, Span)> {
        let value = self.get(key)?;
        match value.get_ref().as_str() {
            Some(text) => Some((text, value.span())),
            None => {
                self.wrong_type(problems, key, value, "a string");
                None
            }
        }
    }

    /// A string that must not be empty.
    pub(super) fn non_empty_string(
        &self,
        problems: &mut Problems,
        key: &str,
    ) -> Option<(&'a str, Span)> {
        let (text, span) = self.string(problems, key)?;
        if text.trim().is_empty() {
            problems.report(
                &span,
                ConfigError::Empty {
                    field: self.field(key),
                },
            );
            return None;
        }
        Some((text, span))
    }

    /// Reports a missing required key at the table's header.
    pub(super) fn require(&self, problems: &mut Problems, key: &str) {
        if self.get(key).is_none() {
            problems.report(
                &self.span,
                ConfigError::MissingKey {
                    field: self.field(key),
                },
            );
        }
    }

    pub(super) fn bool(&self, problems: &mut Problems, key: &str) -> Option<bool> {
        let value = self.get(key)?;
        let flag = value.get_ref().as_bool();
        if flag.is_none() {
            self.wrong_type(problems, key, value, "true or false");
        }
        flag
    }

    /// A whole number from `min` up to `u32::MAX`.
    pub(super) fn count(
        &self,
        problems: &mut Problems,
        key: &str,
        min: u32,
    ) -> Option<(u32, Span)> {
        let value = self.get(key)?;
        let span = value.span();
        let Some(number) = integer_value(value.get_ref()) else {
            self.wrong_type(problems, key, value, "a whole number");
            return None;
        };
        let too_large = |found: String| ConfigError::NumberTooLarge {
            field: self.field(key),
            max: u32::MAX,
            found,
        };
        match number {
            Err(text) => problems.report(&span, too_large(text)),
            Ok(n) if n < i64::from(min) => problems.report(
                &span,
                ConfigError::NumberTooSmall {
                    field: self.field(key),
                    min,
                    found: n,
                },
            ),
            Ok(n) => match u32::try_from(n) {
                Ok(n) => return Some((n, span)),
                Err(_) => problems.report(&span, too_large(n.to_string())),
            },
        }
        None
    }

    /// A positive duration written as a string ("30s").
    pub(super) fn duration(&self, problems: &mut Problems, key: &str) -> Option<(Duration, Span)> {
        let value = self.get(key)?;
        let span = value.span();
        let Some(text) = value.get_ref().as_str() else {
            self.wrong_type(problems, key, value, "a duration string such as \"30s\"");
            return None;
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                problems.report(
                    &span,
                    ConfigError::ZeroDuration {
                        field: self.field(key),
                    },
                );
                None
            }
            Ok(d) => Some((d, span)),
            Err(reason) => {
                let field = self.field(key);
                problems.report(&span, ConfigError::BadDuration { field, reason });
                None
            }
        }
    }

    /// A number in [0, 1), written as a float or an integer.
    pub(super) fn fraction(&self, problems: &mut Problems, key: &str) -> Option<(f64, Span)> {
        let value = self.get(key)?;
        let span = value.span();
        let number = match value.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            other => integer_value(other).and_then(Result::ok).map(|i| i as f64),
        };
        let Some(number) = number else {
            self.wrong_type(
                problems,
                key,
                value,
                "a number from 0 up to (not including) 1",
            );
            return None;
        };
        if !(0.0..1.0).contains(&number) {
            let field = self.field(key);
            problems.report(
                &span,
                ConfigError::JitterOutOfRange {
                    field,
                    found: number,
                },
            );
            return None;
        }
        Some((number, span))
    }

    /// One of a fixed set of strings; `choices` is how the message lists them.
    pub(super) fn choice<T: Copy>(
        &self,
        problems: &mut Problems,
        key: &str,
        options: &[(&str, T)],
        choices: &'static str,
    ) -> Option<(T, Span)> {
        let (text, span) = self.string(problems, key)?;
        let found = options
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, v)| (*v, span.clone()));
        if found.is_none() {
            let field = self.field(key);
            let found = text.to_string();
            problems.report(
                &span,
                ConfigError::UnknownChoice {
                    field,
                    choices,
                    found,
                },
            );
        }
        found
    }
}
