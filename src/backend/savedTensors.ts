/**
 * Tensors saved for the backward pass as new references to the same data, not as Identity kernels.
 *
 * tfjs's engine keeps every tensor a gradient will need (a kernel's inputs and outputs, a custom
 * op's `save` list) through `Engine.clone`: an Identity kernel call plus a tape node, so that a
 * second-order gradient could flow through the saved copy. On wasm the Identity kernel copies the
 * data: a ch64 step of 16 examples copied ~900 activations (and held both copies in the wasm
 * heap); on every backend each clone is a full kernel invocation and a tape node that the
 * backward pass then filters out again (2,159 kernel calls in a ch64 step, 905 of them these
 * Identity calls; on webgpu the step is bound by the host's time per call).
 *
 * Here a saved tensor is a new tensor object on the same data id, reference-counted as Reshape's
 * output is. For a first-order gradient (tf.grads of the loss, all this project takes) the saved
 * copies' tape nodes never carry a gradient. Inside nested gradient tapes (a gradient of a
 * gradient) tfjs's own clone still runs, so second derivatives are unchanged (tested).
 */
import * as tf from '@tensorflow/tfjs-core';

interface EngineInternals {
  clone(x: tf.Tensor): tf.Tensor;
  makeTensorFromTensorInfo(info: tf.TensorInfo, backend?: tf.KernelBackend): tf.Tensor;
  state: { gradientDepth: number; tensorInfo: { get(dataId: object): { backend: tf.KernelBackend } | undefined } };
  backend: tf.KernelBackend;
}

type EngineProto = EngineInternals & { __ddpmTfjsClone?: (x: tf.Tensor) => tf.Tensor };

function engineProto(): EngineProto {
  return Object.getPrototypeOf(tf.engine()) as EngineProto;
}

/** Engine.clone as a new reference to x's data (used only for saving tensors for the backward). */
function referenceClone(this: EngineInternals & EngineProto, x: tf.Tensor): tf.Tensor {
  if (this.state.gradientDepth > 1) return this.__ddpmTfjsClone!.call(this, x);
  const backend = this.state.tensorInfo.get(x.dataId)?.backend ?? this.backend;
  const y = this.makeTensorFromTensorInfo({ dataId: x.dataId, shape: x.shape, dtype: x.dtype }, backend);
  backend.incRef(x.dataId);
  return y;
}

/**
 * On (the default, set by initBackend) or off (tfjs's own clones: tests compare the two). tfjs
 * calls Engine.clone only to save tensors for the backward pass; Tensor.clone() is an op of its own.
 */
export function setReferenceSavedTensors(on: boolean): void {
  const proto = engineProto();
  if (proto.__ddpmTfjsClone === undefined) proto.__ddpmTfjsClone = proto.clone;
  proto.clone = on ? referenceClone : proto.__ddpmTfjsClone;
}

export function referenceSavedTensors(): boolean {
  return engineProto().clone === referenceClone;
}
