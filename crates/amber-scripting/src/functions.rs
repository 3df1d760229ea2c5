//! Redis 7 Functions: libraries loaded with `FUNCTION LOAD`, their registered functions, and
//! `FCALL`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use amber_protocol::ReplyWriter;
use bytes::Bytes;
use mlua::{Function, MultiValue, Table, Value};

use crate::engine::{Engine, HookMode, Host, Invocation, ScriptError, lua_error_text};
use crate::flags::ScriptFlags;

/// One registered function.
#[derive(Clone)]
pub struct FunctionInfo {
    /// Its name, unique across libraries.
    pub name: String,
    /// The description given to `redis.register_function`.
    pub description: Option<String>,
    /// Its flags.
    pub flags: ScriptFlags,
    callback: Function,
}

/// One library: its source and the functions it registered.
#[derive(Clone)]
pub struct Library {
    /// The name in its `#!lua name=` line.
    pub name: String,
    /// The whole source, shebang included (what `FUNCTION DUMP` and RDB files carry).
    pub code: Bytes,
    /// Its functions, by name.
    pub functions: BTreeMap<String, FunctionInfo>,
}

/// Every loaded library.
#[derive(Clone, Default)]
pub(crate) struct Libraries {
    by_name: BTreeMap<String, Library>,
    /// Every function with the library that registered it: `FCALL` names the function
    /// alone. (A B-tree: no hashing per call, and names clients choose cannot collide on
    /// purpose.)
    functions: BTreeMap<String, (String, FunctionInfo)>,
}

impl Libraries {
    fn owner_of(&self, function: &str) -> Option<&Library> {
        self.by_name.get(&self.functions.get(function)?.0)
    }

    fn function(&self, name: &str) -> Option<&FunctionInfo> {
        self.functions.get(name).map(|(_, function)| function)
    }

    fn contains(&self, library: &str) -> bool {
        self.by_name.contains_key(library)
    }

    fn insert(&mut self, library: Library) {
        self.remove(&library.name);
        for (name, function) in &library.functions {
            self.functions
                .insert(name.clone(), (library.name.clone(), function.clone()));
        }
        self.by_name.insert(library.name.clone(), library);
    }

    fn remove(&mut self, name: &str) -> Option<Library> {
        let library = self.by_name.remove(name)?;
        for function in library.functions.keys() {
            self.functions.remove(function);
        }
        Some(library)
    }

    fn clear(&mut self) {
        self.by_name.clear();
        self.functions.clear();
    }
}

/// How `FUNCTION RESTORE` treats the libraries already loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Remove every library first.
    Flush,
    /// Add the restored libraries; a name already loaded is an error.
    Append,
    /// Add the restored libraries, replacing those with the same name.
    Replace,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

const NAME_RULE: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// Reads a library's `#!<engine> name=<name>` line: (engine, name, where the code starts).
fn metadata(code: &[u8]) -> Result<(String, String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let end = code
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("Invalid library metadata")?;
    let parts = amber_protocol::split_args(&code[..end])
        .ok()
        .filter(|parts| !parts.is_empty())
        .ok_or("Invalid library metadata")?;
    let engine = String::from_utf8_lossy(&parts[0][2..]).into_owned();
    let mut name = None;
    for part in &parts[1..] {
        let text = String::from_utf8_lossy(part);
        if text.len() >= 5 && text[..5].eq_ignore_ascii_case("name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(text[5..].to_string());
            continue;
        }
        return Err(format!("Invalid metadata value given: {text}"));
    }
    let name = name.ok_or("Library name was not given")?;
    Ok((engine, name, end))
}

impl Engine {
    /// Loads a library (`FUNCTION LOAD [REPLACE]`): runs its code, which registers functions,
    /// and returns its name. `timeout` stops code that runs longer than 500 ms.
    pub fn load_library(
        &mut self,
        code: &[u8],
        replace: bool,
        timeout: bool,
    ) -> Result<String, ScriptError> {
        let library = self.compile_library(code, timeout).map_err(err)?;
        let mut libraries = self.libraries.clone();
        if libraries.contains(&library.name) && !replace {
            return Err(err(format!("Library '{}' already exists", library.name)));
        }
        libraries.remove(&library.name);
        for function in library.functions.keys() {
            if libraries.owner_of(function).is_some() {
                return Err(err(format!("Function {function} already exists")));
            }
        }
        let name = library.name.clone();
        libraries.insert(library);
        self.libraries = libraries;
        Ok(name)
    }

    fn compile_library(&mut self, code: &[u8], timeout: bool) -> Result<Library, String> {
        let (engine, name, start) = metadata(code)?;
        if !valid_name(&name) {
            return Err(NAME_RULE.into());
        }
        if !engine.eq_ignore_ascii_case("lua") {
            return Err(format!("Engine '{engine}' not found"));
        }
        let chunk = self
            .lua
            .load(&code[start..])
            .set_name("@user_function")
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| format!("Error compiling function: {}", lua_error_text(&e)))?;
        let registered: RefCell<BTreeMap<String, FunctionInfo>> = RefCell::new(BTreeMap::new());
        if timeout {
            self.hook_mode
                .set(HookMode::Load(std::time::Instant::now()));
        }
        let outcome = self.lua.scope(|scope| {
            self.bridge.raw_set(
                "register_function",
                scope.create_function(|_, values: MultiValue| {
                    let function = read_registration(&values).map_err(mlua::Error::runtime)?;
                    let mut registered = registered.borrow_mut();
                    if registered.contains_key(&function.name) {
                        return Err(mlua::Error::runtime(
                            "Function already exists in the library",
                        ));
                    }
                    registered.insert(function.name.clone(), function);
                    Ok(())
                })?,
            )?;
            self.load_library.call::<(bool, Value)>(chunk)
        });
        self.hook_mode.set(HookMode::Idle);
        self.reset_after_load();
        if self.hook_replaced.replace(false) {
            self.install_hook();
        }
        let (ok, error) = outcome.map_err(|e| lua_error_text(&e))?;
        if !ok {
            let message = match error {
                Value::Table(table) => table
                    .raw_get::<String>("err")
                    .unwrap_or_else(|_| "unknown error".into()),
                other => format!("{other:?}"),
            };
            return Err(format!("Error registering functions: {message}"));
        }
        let functions = registered.into_inner();
        if functions.is_empty() {
            return Err("No functions registered".into());
        }
        Ok(Library {
            name,
            code: Bytes::copy_from_slice(code),
            functions,
        })
    }

    fn reset_after_load(&mut self) {
        let refuse = self
            .lua
            .create_function(|_, _: MultiValue| -> mlua::Result<()> {
                Err(mlua::Error::runtime(
                    "redis.register_function can only be called on FUNCTION LOAD command",
                ))
            });
        if let Ok(refuse) = refuse {
            self.bridge.raw_set("register_function", refuse).ok();
        }
    }

    /// The flags of function `name`, if it exists.
    pub fn function_flags(&self, name: &str) -> Option<ScriptFlags> {
        self.libraries.function(name).map(|function| function.flags)
    }

    /// Runs function `name` (`FCALL`), writing its result to `out`.
    pub fn call_function(
        &mut self,
        host: &mut dyn Host,
        name: &str,
        keys: &[Bytes],
        args: &[Bytes],
        out: &mut ReplyWriter,
    ) -> Result<(), ScriptError> {
        let Some(callback) = self
            .libraries
            .function(name)
            .map(|function| &function.callback)
        else {
            return Err(err("Function not found"));
        };
        let run = Invocation {
            function: callback,
            eval_mode: false,
            name,
            keys,
            args,
        };
        self.call(host, run, out)
    }

    /// The loaded libraries, by name.
    pub fn libraries(&self) -> impl Iterator<Item = &Library> {
        self.libraries.by_name.values()
    }

    /// How many libraries and functions are loaded.
    pub fn functions_count(&self) -> (usize, usize) {
        (self.libraries.by_name.len(), self.libraries.functions.len())
    }

    /// Removes library `name` (`FUNCTION DELETE`); false if there is none.
    pub fn delete_library(&mut self, name: &str) -> bool {
        self.libraries.remove(name).is_some()
    }

    /// Removes every library (`FUNCTION FLUSH`).
    pub fn flush_libraries(&mut self) {
        self.libraries.clear();
    }

    /// Loads the libraries of a `FUNCTION RESTORE` payload or an RDB file under `policy`.
    /// All or nothing: on error the libraries loaded before stay as they were.
    pub fn restore_libraries(
        &mut self,
        sources: &[Vec<u8>],
        policy: RestorePolicy,
    ) -> Result<(), ScriptError> {
        let saved = self.libraries.clone();
        if policy == RestorePolicy::Flush {
            self.libraries.clear();
        }
        for source in sources {
            if let Err(error) = self.load_library(source, policy != RestorePolicy::Append, false) {
                self.libraries = saved;
                return Err(error);
            }
        }
        Ok(())
    }
}

fn err(message: impl Into<String>) -> ScriptError {
    let message = message.into();
    ScriptError {
        message: format!("ERR {message}"),
        counted: false,
    }
}

/// Reads the arguments of `redis.register_function`: `(name, callback)` or one table of
/// named arguments, with Redis's error texts.
fn read_registration(values: &MultiValue) -> Result<FunctionInfo, String> {
    let values: Vec<&Value> = values.iter().collect();
    match values.as_slice() {
        [Value::Table(named)] => read_named(named),
        [_] => Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).".into()),
        [name, callback] => {
            let Value::String(name) = name else {
                return Err("first argument to redis.register_function must be a string".into());
            };
            let Value::Function(callback) = callback else {
                return Err("second argument to redis.register_function must be a function".into());
            };
            checked(FunctionInfo {
                name: name.to_string_lossy(),
                description: None,
                flags: ScriptFlags::empty(),
                callback: callback.clone(),
            })
        }
        _ => Err("wrong number of arguments to redis.register_function".into()),
    }
}

fn checked(function: FunctionInfo) -> Result<FunctionInfo, String> {
    if valid_name(&function.name) {
        Ok(function)
    } else {
        Err(NAME_RULE.into())
    }
}

fn read_named(named: &Table) -> Result<FunctionInfo, String> {
    let mut name = None;
    let mut description = None;
    let mut callback = None;
    let mut flags = ScriptFlags::empty();
    for pair in named.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| lua_error_text(&e))?;
        let key = match key {
            Value::String(s) => s.to_string_lossy(),
            Value::Integer(n) => n.to_string(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(
                    "named argument key given to redis.register_function is not a string".into(),
                );
            }
        };
        match key.to_ascii_lowercase().as_str() {
            "function_name" => {
                match value {
                    Value::String(s) => name = Some(s.to_string_lossy()),
                    _ => {
                        return Err("function_name argument given to redis.register_function must be a string".into());
                    }
                }
            }
            "description" => {
                match value {
                    Value::String(s) => description = Some(s.to_string_lossy()),
                    _ => {
                        return Err("description argument given to redis.register_function must be a string".into());
                    }
                }
            }
            "callback" => match value {
                Value::Function(f) => callback = Some(f),
                _ => {
                    return Err(
                        "callback argument given to redis.register_function must be a function"
                            .into(),
                    );
                }
            },
            "flags" => {
                let Value::Table(list) = value else {
                    return Err("flags argument to redis.register_function must be a table representing function flags".into());
                };
                for flag in list.sequence_values::<Value>() {
                    let flag = match flag {
                        Ok(Value::String(s)) => s.to_string_lossy(),
                        _ => return Err("unknown flag given".into()),
                    };
                    match ScriptFlags::from_name(&flag) {
                        Some(f) => flags.insert(f),
                        None => return Err("unknown flag given".into()),
                    }
                }
            }
            _ => return Err("unknown argument given to redis.register_function".into()),
        }
    }
    let name = name.ok_or("redis.register_function must get a function name argument")?;
    let callback = callback.ok_or("redis.register_function must get a callback argument")?;
    checked(FunctionInfo {
        name,
        description,
        flags,
        callback,
    })
}
