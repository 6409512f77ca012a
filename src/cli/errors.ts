/** Errors that are the user's to fix: reported as one line, exit code 2, no stack trace. */
import { DataError } from '../data/dataset';
import { InvalidModelConfigError } from '../model/config';
import { InvalidTrainConfigError } from '../training/config';
import { CheckpointError } from '../checkpoint/errors';
import { InitWeightsError } from '../checkpoint/initWeights';
import { BackendUnavailableError } from '../backend/backend';
import { InvalidTimestepsError, UnknownScheduleError } from '../schedule';
import { NotEnoughWorkersError } from '../coordinator/errors';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const USER_ERRORS = [UsageError, DataError, InvalidModelConfigError, InvalidTrainConfigError, CheckpointError, BackendUnavailableError, UnknownScheduleError, InvalidTimestepsError, InitWeightsError, NotEnoughWorkersError];

export function isUserError(err: unknown): err is Error {
  return USER_ERRORS.some((cls) => err instanceof cls);
}

export const EXIT_USER_ERROR = 2;
