/**
 * Parameters step: the declared path, query and header parameters (policy.json
 * `operations[].parameters`, OpenAPI 3.0.3 §4.7.12) against their compiled schema
 * (`CompiledOperation.validateParams`, strings coerced to the declared types).
 *
 * Takes in: the decoded path values of the canonical path (`x.pathParams`), the raw query, the
 * request headers. Ends the exchange with 400 `validation-failed` and the failing field
 * pointers (`in: path|query|header`) when a value is malformed (percent-encoding, a non-array
 * parameter given twice: params.ts `DecodeError`) or fails its schema. Always synchronous.
 */
import type { ValidateFunction } from 'ajv';
import type { CompiledOperation } from '../../snapshot/build.js';
import type { Exchange } from '../exchange.js';
import { DecodeError, extractParams, mapAjvErrors, validationDetail } from '../params.js';
import { problem, type FieldError } from '../problem.js';
import type { Step, StepFactory, StepResult } from '../step.js';

class Parameters implements Step {
  readonly name = 'parameters';
  private readonly validate: ValidateFunction;
  /** The operation declares header parameters: repeated copies are looked for. */
  private readonly headerParams: boolean;

  constructor(validate: ValidateFunction, op: CompiledOperation) {
    this.validate = validate;
    this.headerParams = op.headerParams.length > 0;
  }

  run(x: Exchange): StepResult {
    const { op, req } = x;
    let params;
    try {
      params = extractParams(op, x.pathParams, x.rawQuery, req.headers, this.headerParams ? req.headersDistinct : undefined);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      const errors: FieldError[] = [{ in: err.where, pointer: `/${err.param}`, message: err.fieldMessage }];
      x.dp.metrics.validation(op.key, errors);
      x.fail(problem('validation-failed', err.message, { errors }), 'invalid_request', { validation: errors });
      return undefined;
    }
    if (!this.validate(params)) {
      const errors = mapAjvErrors(this.validate.errors, 'params');
      x.dp.metrics.validation(op.key, errors);
      x.fail(problem('validation-failed', validationDetail(errors, 'parameter'), { errors }), 'invalid_request', { validation: errors });
    }
    return undefined;
  }
}

/** Operations that declare parameters (a compiled `validateParams`). */
export const parametersStep: StepFactory = {
  name: 'parameters',
  compile: (op: CompiledOperation) => (op.validateParams ? new Parameters(op.validateParams, op) : undefined),
};
