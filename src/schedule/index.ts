export * from './betaSchedule';
export * from './samplingTimesteps';
