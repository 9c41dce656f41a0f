/** One line of `ckpt doctor`'s report (shared by doctor.ts and the checks in doctor-handler.ts). */
export type Level = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  level: Level;
  message: string;
}
