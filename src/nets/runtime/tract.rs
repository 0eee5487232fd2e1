//! The tract runtime: any ONNX file, an optimised plan per input size (cached: a caps change
//! rebuilds it once), matrix products on rayon's global pool (the one the physics code uses).

use std::cell::Cell;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Once};

use tract_onnx::prelude::*;

use super::Runtime;

type Plan = Arc<TypedSimplePlan>;

/// A network loaded by tract.
pub(crate) struct Tract {
    model: InferenceModel,
    /// Input channel counts (batch 1, NCHW).
    inputs: &'static [usize],
    plan: Option<((usize, usize), Plan)>,
}

/// tract multiplies matrices on rayon's global pool.
fn init_executor() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tract_linalg::multithread::set_default_executor(
            tract_linalg::multithread::Executor::RayonGlobal,
        );
    });
}

thread_local! {
    /// Set while [`guarded`] runs tract: the panic hook stays silent.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (a call into tract) with its panics turned into errors. tract asserts on some
/// malformed graphs (a convolution with stride 0 divides by zero while it plans): a corrupt
/// model file must be an error naming the file, not a crash. The panic message is not
/// printed; it becomes the error's text.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                default(info);
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    r.unwrap_or_else(|p| {
        let msg = crate::error::panic_message(&*p);
        Err(format!("tract failed on this graph: {msg}"))
    })
}

impl Tract {
    /// Parses an ONNX file whose inputs have `inputs` channels.
    pub(crate) fn read(bytes: &[u8], inputs: &'static [usize]) -> Result<Self, String> {
        init_executor();
        let model = guarded(|| {
            tract_onnx::onnx()
                .model_for_read(&mut Cursor::new(bytes))
                .map_err(|e| format!("not a readable ONNX model: {e:#}"))
        })?;
        Ok(Self {
            model,
            inputs,
            plan: None,
        })
    }

    /// The file's (inputs, outputs) counts.
    pub(crate) fn arity(&self) -> (usize, usize) {
        (
            self.model.input_outlets().map(|o| o.len()).unwrap_or(0),
            self.model.output_outlets().map(|o| o.len()).unwrap_or(0),
        )
    }

    fn plan(&mut self, h: usize, w: usize) -> Result<Plan, String> {
        if let Some((size, plan)) = &self.plan
            && *size == (h, w)
        {
            return Ok(plan.clone());
        }
        let mut m = self.model.clone();
        let inputs = self.inputs;
        let plan = guarded(move || {
            for (i, &c) in inputs.iter().enumerate() {
                m = m
                    .with_input_fact(i, f32::fact([1, c, h, w]).into())
                    .map_err(|e| e.to_string())?;
            }
            m.into_optimized()
                .and_then(|m| m.into_runnable())
                .map_err(|e| e.to_string())
        })?;
        self.plan = Some(((h, w), plan.clone()));
        Ok(plan)
    }

    fn run_tensors(
        &mut self,
        h: usize,
        w: usize,
        inputs: &[&[f32]],
    ) -> Result<Vec<Tensor>, String> {
        let mut ts = Vec::with_capacity(inputs.len());
        for (&data, &c) in inputs.iter().zip(self.inputs) {
            ts.push(Tensor::from_shape(&[1, c, h, w], data).map_err(|e| e.to_string())?);
        }
        let plan = self.plan(h, w)?;
        let outs = guarded(|| {
            plan.run(ts.into_iter().map(TValue::from).collect())
                .map_err(|e| format!("{e:#}"))
        })?;
        Ok(outs.into_iter().map(|v| v.into_tensor()).collect())
    }

    /// The shapes of the outputs at `h`×`w`, and whether every value is finite (the
    /// load-time probe).
    pub(crate) fn output_shapes(
        &mut self,
        h: usize,
        w: usize,
        inputs: &[&[f32]],
    ) -> Result<Vec<(Vec<usize>, bool)>, String> {
        Ok(self
            .run_tensors(h, w, inputs)?
            .iter()
            .map(|t| {
                let finite = t
                    .try_as_plain_ram()
                    .and_then(|v| v.as_slice::<f32>().map(|v| v.iter().all(|x| x.is_finite())))
                    .unwrap_or(false);
                (t.shape().to_vec(), finite)
            })
            .collect())
    }
}

impl Runtime for Tract {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn run(&mut self, h: usize, w: usize, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>, String> {
        self.run_tensors(h, w, inputs)?
            .into_iter()
            .map(|t| {
                t.try_as_plain_ram()
                    .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }
}
