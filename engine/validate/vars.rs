//! Checks of `vars`: names, sources, choices and default templates (which may only read
//! variables declared above them).

use super::Diagnostic;
use super::templates::{Scope, TemplateOwner, VarFacts, secret_read_by_default};
use super::validator::Validator;
use super::values::is_var_name;
use crate::document::{OrderedMap, Position, RawVar, Scalar, Spanned, VarType};
use crate::model::{VarDecl, parse_list};

/// Characters that mean nothing to a POSIX shell, so a value made only of them can be pasted
/// into a script unquoted.
pub(super) fn is_shell_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "_-./:@%+=,".contains(character))
}

impl Validator<'_> {
    pub(super) fn vars(
        &mut self,
        raw: Option<&Spanned<OrderedMap<Spanned<RawVar>>>>,
    ) -> Vec<VarDecl> {
        let Some(raw) = raw else { return Vec::new() };
        self.all_var_names = raw
            .value
            .iter()
            .map(|(name, _)| name.value.clone())
            .collect();
        let mut declarations = Vec::new();
        for (index, (name, var)) in raw.value.iter().enumerate() {
            if !is_var_name(&name.value) {
                let message = format!("`{}` is not a valid variable name", name.value);
                self.push(
                    Diagnostic::error("invalid-var-name", message, Some(name.position))
                        .with_help("use letters, digits and `_`, not starting with a digit: it is written `vars.<name>` in templates"),
                );
            }
            let mut declaration = self.var(index, name, var);
            // A default that reads a secret makes a secret: the value is tainted by it.
            let derived_from = declaration
                .default
                .as_ref()
                .filter(|_| !declaration.secret)
                .and_then(|default| {
                    secret_read_by_default(&self.engine, &self.vars, &default.text)
                });
            if derived_from.is_some() {
                declaration.secret = true;
            }
            // Declared before its default is checked would let a default read itself.
            self.vars.push(VarFacts {
                name: declaration.name.clone(),
                secret: declaration.secret,
                env_source: declaration.env.clone(),
                derived_from,
                list: declaration.list,
                shell_safe: !declaration.choices.is_empty()
                    && declaration
                        .choices
                        .iter()
                        .all(|choice| is_shell_safe(choice)),
            });
            declarations.push(declaration);
        }
        declarations
    }

    fn var(&mut self, index: usize, name: &Spanned<String>, var: &Spanned<RawVar>) -> VarDecl {
        let place = format!("vars.{}", name.value);
        let scope = Scope::new(
            format!("{place}.default"),
            TemplateOwner::VarDefault { visible: index },
        )
        .allow_secrets();
        let mut declaration = VarDecl {
            name: name.value.clone(),
            description: None,
            default: None,
            required: false,
            choices: Vec::new(),
            env: None,
            file: None,
            secret: false,
            list: false,
            position: name.position,
        };
        let spec = match &var.value {
            RawVar::Plain(scalar) => {
                declaration.list = scalar.is_list();
                if declaration.list {
                    self.literal_list_items(scalar, &place, var.position);
                }
                declaration.default = scalar
                    .0
                    .as_ref()
                    .map(|text| self.template(&Spanned::new(text.clone(), var.position), &scope));
                return declaration;
            }
            RawVar::Declared(spec) => spec,
        };
        declaration.description = spec
            .description
            .as_ref()
            .map(|description| description.value.clone());
        declaration.required = spec
            .required
            .as_ref()
            .is_some_and(|required| required.value);
        declaration.secret = spec.secret.as_ref().is_some_and(|secret| secret.value);
        declaration.env = spec.env.as_ref().map(|env| env.value.clone());
        declaration.file = spec.file.as_ref().map(|file| file.value.clone());
        let list_default = spec
            .default
            .as_ref()
            .is_some_and(|default| default.value.is_list());
        declaration.list = match spec.kind.as_ref().map(|kind| (kind.value, kind.position)) {
            Some((VarType::String, position)) if list_default => {
                let message = format!("`{place}` is `type: string` but its default is a list");
                self.push(
                    Diagnostic::error("var-type", message, Some(position))
                        .with_help("say `type: list`, or give one value"),
                );
                false
            }
            Some((kind, _)) => kind == VarType::List,
            None => list_default,
        };
        if let Some(default) = spec.default.as_ref().filter(|_| list_default) {
            self.literal_list_items(&default.value, &place, default.position);
        }
        if declaration.list
            && let Some(secret) = spec.secret.as_ref().filter(|secret| secret.value)
        {
            let message = format!("list variable `{place}` cannot be `secret`");
            self.push(
                Diagnostic::error("secret-list", message, Some(secret.position))
                    .with_help("secrets are masked as whole values: give each secret its own var"),
            );
        }
        if let Some(choice) = spec
            .choices
            .iter()
            .flat_map(|choices| choices.value.iter())
            .find(|choice| choice.value.is_list())
        {
            let message = format!("a choice of `{place}` is a list: each choice is one value");
            self.push(Diagnostic::error(
                "var-choice-list",
                message,
                Some(choice.position),
            ));
        }
        if let Some(default) = &spec.default
            && let Some(text) = &default.value.0
        {
            declaration.default =
                Some(self.template(&Spanned::new(text.clone(), default.position), &scope));
        }
        if let Some(choices) = &spec.choices {
            if choices.value.is_empty() {
                self.push(Diagnostic::error(
                    "empty-choices",
                    format!("`{place}.choices` is empty"),
                    Some(choices.position),
                ));
            }
            declaration.choices = choices
                .value
                .iter()
                .filter_map(|choice| choice.value.0.clone())
                .collect();
            let default_text = spec
                .default
                .as_ref()
                .and_then(|default| default.value.0.clone());
            let default_items = match default_text {
                Some(text) if declaration.list => parse_list(&text).unwrap_or_default(),
                Some(text) => vec![text],
                None => Vec::new(),
            };
            let outside = default_items
                .into_iter()
                .find(|item| !item.contains("{{") && !declaration.choices.contains(item));
            if let (Some(default), Some(position)) = (
                outside,
                spec.default.as_ref().map(|default| default.position),
            ) {
                let message =
                    format!("the default of `{place}`, `{default}`, is not one of its `choices`");
                let help = format!("choices: {}", declaration.choices.join(", "));
                self.push(
                    Diagnostic::error("default-not-a-choice", message, Some(position))
                        .with_help(help),
                );
            }
        }
        if declaration.secret
            && let Some(default) = &spec.default
        {
            let message = format!("secret `{place}` has a default written in the runbook");
            self.push(
                Diagnostic::warning("hard-coded-secret", message, Some(default.position))
                    .with_help(
                        "read secrets from `env:` or `file:` instead of writing them in the file",
                    ),
            );
        }
        if let Some(env) = &spec.env
            && !super::values::is_env_name(&env.value)
        {
            let message = format!("`{}` is not a valid environment variable name", env.value);
            self.push(Diagnostic::error(
                "invalid-env-name",
                message,
                Some(env.position),
            ));
        }
        declaration
    }

    /// The items of a list written in the runbook are literal: a template there could render
    /// into text that breaks the list.
    fn literal_list_items(&mut self, scalar: &Scalar, place: &str, position: Position) {
        let items = scalar
            .0
            .as_deref()
            .map(parse_list)
            .and_then(Result::ok)
            .unwrap_or_default();
        if let Some(item) = items.iter().find(|item| item.contains("{{")) {
            let message = format!("an item of the list `{place}`, `{item}`, is a template");
            self.push(
                Diagnostic::error("list-item-template", message, Some(position))
                    .with_help("list items are literal; a value computed from others can be a plain var's default: `a,b,c`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_shell_safe;

    #[test]
    fn shell_safe_values() {
        assert!(is_shell_safe("production"));
        assert!(is_shell_safe("v1.2.3"));
        assert!(!is_shell_safe("a b"));
        assert!(!is_shell_safe("$(x)"));
        assert!(!is_shell_safe(""));
    }
}
