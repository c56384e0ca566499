//! Decisions inside templates (SPEC §6): one truthiness for `if`, `unless`, `not`, `and`, `or`
//! and a step's `if`; comparisons that read numbers as numbers; and, in a plan, conditions on
//! what only a run knows, which stay undecided and show both branches.

use std::cell::RefCell;
use std::cmp::Ordering;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, PathAndJson, RenderContext,
    RenderError, RenderErrorReason, Renderable, ScopedJson,
};
use serde_json::Value;

/// `run.id` in a plan's context: there, what only a run knows is a `<...>` placeholder.
pub(crate) const PLAN_RUN_ID: &str = "<run.id>";

/// Helpers whose result on a placeholder is itself a placeholder: `<gt steps.a.outputs.n 5>`.
const UNDECIDED_HELPERS: [&str; 9] = ["eq", "ne", "gt", "gte", "lt", "lte", "not", "and", "or"];

/// Whether a rendered condition holds: the text, trimmed and lowercased, is false when it is
/// empty, `false`, `0`, `no`, `off` or `null`, and true otherwise.
pub(crate) fn is_truthy(rendered: &str) -> bool {
    let text = rendered.trim();
    !["", "false", "0", "no", "off", "null"]
        .iter()
        .any(|falsy| text.eq_ignore_ascii_case(falsy))
}

/// Truthiness of a value as a template would render it; a list or map holds when not empty.
fn value_is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => is_truthy(&number.to_string()),
        Value::String(text) => is_truthy(text),
        Value::Array(list) => !list.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// A text reads as a number when, trimmed, it is a decimal with optional sign, fraction and
/// exponent (`-2.5`, `1e3`); `inf` and `NaN` stay text.
pub(crate) fn as_number(text: &str) -> Option<f64> {
    let number: f64 = text.trim().parse().ok()?;
    number.is_finite().then_some(number)
}

/// In a plan, the expression a placeholder stands for (`steps.a.outputs.n`,
/// `gt steps.a.outputs.n 5`); `None` for a value known before the run.
pub(crate) fn undecided(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('<')?.strip_suffix('>')?;
    let rooted = inner.starts_with("steps.") || inner.starts_with("run.");
    let derived = inner
        .split_once(' ')
        .is_some_and(|(helper, _)| UNDECIDED_HELPERS.contains(&helper));
    (rooted || derived).then_some(inner)
}

fn undecided_value(value: &Value, plan: bool) -> bool {
    plan && value.as_str().is_some_and(|text| undecided(text).is_some())
}

fn is_plan(context: &Context) -> bool {
    context.data().pointer("/run/id").and_then(Value::as_str) == Some(PLAN_RUN_ID)
}

/// How an argument is written, for a condition a plan cannot decide: its path, a nested
/// undecided expression in parentheses, or the literal.
fn expression(parameter: &PathAndJson<'_>) -> String {
    if let Some(path) = parameter.relative_path() {
        return path.clone();
    }
    match parameter.value() {
        Value::String(text) => match undecided(text) {
            Some(inner) if inner.contains(' ') => format!("({inner})"),
            Some(inner) => inner.to_owned(),
            None => format!("{text:?}"),
        },
        value => value.to_string(),
    }
}

fn undecided_result(helper: &Helper<'_>) -> Value {
    let arguments: Vec<String> = helper.params().iter().map(expression).collect();
    Value::String(format!("<{} {}>", helper.name(), arguments.join(" ")))
}

/// Argument `index`; an undefined path is an error naming it.
fn argument<'a>(helper: &'a Helper<'_>, index: usize) -> Result<&'a Value, RenderError> {
    super::argument(helper, index)
}

/// A value as the text it renders to, for comparing; lists and maps cannot be ordered.
fn comparable_text(helper: &Helper<'_>, value: &Value) -> Result<String, RenderError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Null => Ok(String::new()),
        Value::Number(_) | Value::Bool(_) => Ok(value.to_string()),
        Value::Array(_) | Value::Object(_) => {
            let name = helper.name();
            let message =
                format!("helper `{name}` compares strings and numbers, not a list or map");
            Err(RenderErrorReason::Other(message).into())
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Comparison {
    Equal,
    NotEqual,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Comparison {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Comparison::Equal => ordering == Ordering::Equal,
            Comparison::NotEqual => ordering != Ordering::Equal,
            Comparison::Greater => ordering == Ordering::Greater,
            Comparison::GreaterOrEqual => ordering != Ordering::Less,
            Comparison::Less => ordering == Ordering::Less,
            Comparison::LessOrEqual => ordering != Ordering::Greater,
        }
    }

    fn compare(self, helper: &Helper<'_>, plan: bool) -> Result<Value, RenderError> {
        let left = argument(helper, 0)?;
        let right = argument(helper, 1)?;
        if undecided_value(left, plan) || undecided_value(right, plan) {
            return Ok(undecided_result(helper));
        }
        let equality = matches!(self, Comparison::Equal | Comparison::NotEqual);
        let structured = |value: &Value| matches!(value, Value::Array(_) | Value::Object(_));
        if equality && (structured(left) || structured(right)) {
            let ordering = if left == right {
                Ordering::Equal
            } else {
                Ordering::Less
            };
            return Ok(Value::Bool(self.holds(ordering)));
        }
        let left_text = comparable_text(helper, left)?;
        let right_text = comparable_text(helper, right)?;
        let ordering = match (as_number(&left_text), as_number(&right_text)) {
            (Some(left_number), Some(right_number)) => left_number
                .partial_cmp(&right_number)
                .unwrap_or(Ordering::Less),
            (None, None) => left_text.cmp(&right_text),
            // Equality of a number and a text is a plain answer: they differ.
            _ if equality => Ordering::Less,
            _ => {
                let message = format!(
                    "cannot compare `{left_text}` with `{right_text}`: one is a number and the \
                     other is not"
                );
                return Err(RenderErrorReason::Other(message).into());
            }
        };
        Ok(Value::Bool(self.holds(ordering)))
    }
}

impl HelperDef for Comparison {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        context: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        self.compare(helper, is_plan(context))
            .map(ScopedJson::Derived)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Logic {
    Not,
    And,
    Or,
}

impl Logic {
    /// Three-valued in a plan: `and` with one false argument is false whatever the others.
    fn evaluate(self, helper: &Helper<'_>, plan: bool) -> Result<Value, RenderError> {
        let count = match self {
            Logic::Not => 1,
            Logic::And | Logic::Or => helper.params().len().max(1),
        };
        let mut undecided = false;
        let mut values = Vec::with_capacity(count);
        for index in 0..count {
            let value = argument(helper, index)?;
            if undecided_value(value, plan) {
                undecided = true;
            } else {
                values.push(value_is_truthy(value));
            }
        }
        let decided = match self {
            Logic::Not => values.first().map(|value| !value),
            Logic::And if values.contains(&false) => Some(false),
            Logic::Or if values.contains(&true) => Some(true),
            Logic::And => (!undecided).then_some(true),
            Logic::Or => (!undecided).then_some(false),
        };
        Ok(decided.map_or_else(|| undecided_result(helper), Value::Bool))
    }
}

impl HelperDef for Logic {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        context: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        self.evaluate(helper, is_plan(context))
            .map(ScopedJson::Derived)
    }
}

/// A `{{#if}}` or `{{#unless}}` block a plan could not decide: its condition and what each
/// branch renders to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The condition as written, `not (...)` for `unless`.
    pub condition: String,
    /// What renders when the condition holds.
    pub then: String,
    /// What renders otherwise; `None` when the block has no `{{else}}` for that case.
    pub otherwise: Option<String>,
}

thread_local! {
    /// Decisions of the plan render under way on this thread (rendering is synchronous).
    static DECISIONS: RefCell<Option<Vec<Decision>>> = const { RefCell::new(None) };
}

/// Starts collecting the undecided blocks of renders on this thread.
pub(super) fn start_collecting() {
    DECISIONS.with(|decisions| *decisions.borrow_mut() = Some(Vec::new()));
}

/// The undecided blocks since `start_collecting`, outermost first; stops collecting.
pub(super) fn take_collected() -> Vec<Decision> {
    DECISIONS
        .with(|decisions| decisions.borrow_mut().take())
        .unwrap_or_default()
}

/// Reserves the next slot, so an outer block is listed before the blocks inside it.
fn reserve_slot() -> Option<usize> {
    DECISIONS.with(|decisions| {
        let mut decisions = decisions.borrow_mut();
        let list = decisions.as_mut()?;
        list.push(Decision {
            condition: String::new(),
            then: String::new(),
            otherwise: None,
        });
        Some(list.len() - 1)
    })
}

fn fill_slot(slot: Option<usize>, decision: Decision) {
    DECISIONS.with(|decisions| {
        let mut decisions = decisions.borrow_mut();
        if let Some(entry) = slot
            .zip(decisions.as_mut())
            .and_then(|(slot, list)| list.get_mut(slot))
        {
            *entry = decision;
        }
    });
}

struct Buffer(String);

impl Output for Buffer {
    fn write(&mut self, segment: &str) -> Result<(), std::io::Error> {
        self.0.push_str(segment);
        Ok(())
    }
}

/// `{{#if}}` and `{{#unless}}` with the engine's truthiness. A missing path is false, as in
/// handlebars (blocks never check strict mode).
pub(super) struct ConditionBlock {
    pub negated: bool,
}

impl HelperDef for ConditionBlock {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        registry: &'reg Handlebars<'reg>,
        context: &'rc Context,
        render_context: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let name = if self.negated { "unless" } else { "if" };
        let parameter = helper
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex(name, 0))?;
        let value = parameter.value();
        if undecided_value(value, is_plan(context)) {
            return self.render_both(helper, registry, context, render_context, out);
        }
        let holds = value_is_truthy(value) != self.negated;
        let branch = if holds {
            helper.template()
        } else {
            helper.inverse()
        };
        match branch {
            Some(template) => template.render(registry, context, render_context, out),
            None => Ok(()),
        }
    }
}

impl ConditionBlock {
    /// Writes `[if decided at run time: CONDITION]THEN[else]ELSE[end if]` and records the
    /// decision for the plan's JSON.
    fn render_both<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        registry: &'reg Handlebars<'reg>,
        context: &'rc Context,
        render_context: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let slot = reserve_slot();
        let written = helper.param(0).map(expression).unwrap_or_default();
        let bare = written
            .strip_prefix('(')
            .and_then(|inner| inner.strip_suffix(')'))
            .unwrap_or(&written);
        let condition = if self.negated {
            format!("not {written}")
        } else {
            bare.to_owned()
        };
        let mut render = |template: Option<&'rc handlebars::Template>| -> Result<_, RenderError> {
            let Some(template) = template else {
                return Ok(None);
            };
            let mut buffer = Buffer(String::new());
            template.render(registry, context, render_context, &mut buffer)?;
            Ok(Some(buffer.0))
        };
        let (positive, negative) = (render(helper.template())?, render(helper.inverse())?);
        let (then, otherwise) = if self.negated {
            (negative, positive)
        } else {
            (positive, negative)
        };
        let then = then.unwrap_or_default();
        let mut shown = format!("[if decided at run time: {condition}]{then}");
        if let Some(otherwise) = &otherwise {
            shown.push_str("[else]");
            shown.push_str(otherwise);
        }
        shown.push_str("[end if]");
        out.write(&shown)?;
        fill_slot(
            slot,
            Decision {
                condition,
                then,
                otherwise,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
#[expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::super::TemplateEngine;
    use super::*;
    use serde_json::json;

    fn render(template: &str, run_id: &str) -> Result<String, String> {
        let context = json!({
            "vars": {"rate": "9", "limit": "10", "na": "n/a", "empty": "", "one": "1.0",
                     "word": "abc", "list": [], "flag": true},
            "run": {"id": run_id},
            "steps": {"probe": {"outputs": {"rate": "<steps.probe.outputs.rate>"}}},
        });
        TemplateEngine::new()
            .render(template, &context)
            .map_err(|error| error.to_string())
    }

    fn check(table: &str, run_id: &str) {
        for line in table.lines().map(str::trim).filter(|line| !line.is_empty()) {
            let (template, expected) = line.split_once(" => ").unwrap();
            let rendered = render(template, run_id).unwrap_or_else(|error| error);
            assert_eq!(rendered, expected, "{template}");
        }
    }

    #[test]
    fn truthiness_is_one_list_trimmed_and_case_blind() {
        for falsy in [
            "", " ", "false", "False", "0", "no", "NO", " off ", "null", "Null\n",
        ] {
            assert!(!is_truthy(falsy), "{falsy:?}");
        }
        for truthy in ["1", "true", "yes", "on", "0.0", "nil", "n/a", "-"] {
            assert!(is_truthy(truthy), "{truthy:?}");
        }
    }

    #[test]
    fn numbers_compare_as_numbers_and_texts_as_texts() {
        check(
            "{{gt vars.rate vars.limit}} {{lt vars.rate vars.limit}} => false true
            {{gte 10 vars.limit}} {{lte ' 10 ' 9}} => true false
            {{eq vars.one 1}} {{ne vars.one 1}} {{eq '1e3' 1000}} => true false true
            {{eq vars.word 'abc'}} {{eq vars.word 'ABC'}} {{eq vars.na 1}} => true false false
            {{gt 'abd' vars.word}} {{lt 'b' 'a'}} => true false
            {{eq vars.flag true}} {{eq vars.list vars.list}} => true true
            {{gt vars.rate vars.na}} => cannot compare `9` with `n/a`: one is a number and the other is not
            {{lt vars.empty 1}} => cannot compare `` with `1`: one is a number and the other is not
            {{gt 'inf' 1}} => cannot compare `inf` with `1`: one is a number and the other is not
            {{gt vars.list 1}} => helper `gt` compares strings and numbers, not a list or map",
            "run-1",
        );
    }

    #[test]
    fn conditions_and_logic_share_the_truthiness() {
        check(
            "{{not 'false'}} {{not 'Off'}} {{not 'yes'}} {{not vars.empty}} => true true false true
            {{and 'true' 'null'}} {{or 'no' ' 1 '}} {{and 1 'x' true}} => false true true
            {{#if 'False'}}y{{else}}n{{/if}} {{#unless ' null '}}u{{/unless}} => n u
            {{#if vars.list}}y{{else}}n{{/if}} {{#if vars.nope}}y{{else}}n{{/if}} => n n
            {{#if (gt vars.limit vars.rate)}}big{{else}}small{{/if}} => big",
            "run-1",
        );
    }

    #[test]
    fn a_plan_leaves_run_time_conditions_undecided_with_both_branches() {
        check(
            "{{gt steps.probe.outputs.rate 5}} => <gt steps.probe.outputs.rate 5>
            {{and (eq steps.probe.outputs.rate 'x') false}} => false
            {{or (eq steps.probe.outputs.rate 'x') false}} => <or (eq steps.probe.outputs.rate \"x\") false>
            {{#if (gt steps.probe.outputs.rate vars.rate)}}P1{{else}}P3{{/if}} => [if decided at run time: gt steps.probe.outputs.rate vars.rate]P1[else]P3[end if]
            {{#unless steps.probe.outputs.rate}}none{{/unless}} => [if decided at run time: not steps.probe.outputs.rate][else]none[end if]",
            PLAN_RUN_ID,
        );
        // Outside a plan the same text is an ordinary value.
        check(
            "{{#if steps.probe.outputs.rate}}y{{else}}n{{/if}} => y",
            "run-1",
        );
    }

    #[test]
    fn a_plan_render_returns_each_undecided_block_outermost_first() {
        let engine = TemplateEngine::new();
        let context = json!({"run": {"id": PLAN_RUN_ID},
            "steps": {"a": {"outputs": {"x": "<steps.a.outputs.x>"}}}});
        let context = super::super::BorrowedContext::new(&context);
        let template =
            "{{#if steps.a.outputs.x}}A{{#if (eq steps.a.outputs.x 'b')}}B{{/if}}{{/if}}";
        let (_, decisions) = engine.render_for_plan(template, &context).unwrap();
        let conditions: Vec<(&str, &str, Option<&str>)> = decisions
            .iter()
            .map(|decision| {
                (
                    decision.condition.as_str(),
                    decision.then.as_str(),
                    decision.otherwise.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            conditions,
            [
                (
                    "steps.a.outputs.x",
                    "A[if decided at run time: eq steps.a.outputs.x \"b\"]B[end if]",
                    None
                ),
                ("eq steps.a.outputs.x \"b\"", "B", None),
            ]
        );
    }
}
