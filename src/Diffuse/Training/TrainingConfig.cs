namespace Diffuse.Training;

/// <summary>Optimisation settings; every default is defined here once and saved with every checkpoint.</summary>
/// <param name="Steps">Total optimizer steps.</param>
/// <param name="BatchSize">Examples per step (the global batch).</param>
/// <param name="LearningRate">Peak learning rate of AdamW.</param>
/// <param name="WarmupSteps">Steps of linear warm-up from 0 to the peak, before cosine decay to 0.</param>
/// <param name="WeightDecay">AdamW's decoupled weight decay (Loshchilov and Hutter 2019).</param>
/// <param name="GradientClip">Maximum global gradient norm; 0 disables clipping.</param>
/// <param name="EmaDecay">Decay of the exponential moving average of the weights (with warm-up min(decay, (1 + k)/(10 + k))).</param>
/// <param name="MinSnrGamma">γ of min-SNR-γ loss weighting (Hang et al. 2023); null for the plain MSE.</param>
/// <param name="Seed">Fixes initialisation, data order, timesteps and noise.</param>
/// <param name="CheckpointEvery">Steps between checkpoints (a final one is always written).</param>
/// <param name="GradientAccumulation">
/// Micro-batches per step: the batch is processed in this many sequential parts whose gradients add up before one
/// optimizer step, so a large batch fits in less memory; the result equals one pass over the whole batch.
/// </param>
/// <param name="LabelDropout">
/// For labelled data, the probability that an example's label is replaced by the null class, so that one network learns
/// the conditional and the unconditional model (classifier-free guidance, Ho and Salimans 2022, Algorithm 1).
/// </param>
/// <param name="HorizontalFlip">For images, mirror each training example left to right with probability ½.</param>
public sealed record TrainingConfig(
    int Steps = 4000,
    int BatchSize = 512,
    double LearningRate = 3e-3,
    int WarmupSteps = 100,
    double WeightDecay = 0.0,
    double GradientClip = 1.0,
    double EmaDecay = 0.999,
    double? MinSnrGamma = null,
    ulong Seed = 0,
    int CheckpointEvery = 1000,
    int GradientAccumulation = 1,
    double LabelDropout = 0.1,
    bool HorizontalFlip = false)
{
    /// <summary>The defaults for tables (an MLP on standardised columns): the record's own defaults.</summary>
    public static TrainingConfig Tables { get; } = new();

    /// <summary>
    /// The defaults for images, where the tabular ones (batch 512, lr 3e-3) do not fit: 10,000 steps of batch 128 at lr
    /// 2e-4 (Ho et al. 2020 used 2e-4 with batch 128), warm-up 500, EMA 0.9995, checkpoints every 500 steps. Used by
    /// <see cref="Trainer.Create(Data.Images.ImageDataset, TrainingConfig?, Schedules.ScheduleConfig?, Parameterization.Prediction, Models.UNetConfig?, Distributed.ICollective?, Formulations.FormulationConfig?, TorchSharp.torch.Device?)"/>
    /// when no settings are given; start from it with <c>TrainingConfig.Images with { Steps = … }</c>.
    /// </summary>
    public static TrainingConfig Images { get; } = new(Steps: 10_000, BatchSize: 128, LearningRate: 2e-4, WarmupSteps: 500, EmaDecay: 0.9995, CheckpointEvery: 500);

    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid value.</summary>
    public void Validate()
    {
        if (Steps < 1) throw new DiffuseException($"{Param.Of("TrainingConfig.Steps")} must be at least 1 (got {Steps}).");
        if (BatchSize < 1) throw new DiffuseException($"{Param.Of("TrainingConfig.BatchSize")} must be at least 1 (got {BatchSize}).");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new DiffuseException($"{Param.Of("TrainingConfig.LearningRate")} must be a positive number (got {LearningRate}).");
        if (WarmupSteps < 0) throw new DiffuseException($"the warm-up must be zero or more steps (got {WarmupSteps}).");
        if (WeightDecay < 0) throw new DiffuseException($"the weight decay must be zero or positive (got {WeightDecay}).");
        if (GradientClip < 0) throw new DiffuseException($"the gradient clip must be zero or positive (got {GradientClip}).");
        if (!(EmaDecay >= 0 && EmaDecay < 1)) throw new DiffuseException($"{Param.Of("TrainingConfig.EmaDecay")} must lie in [0, 1) (got {EmaDecay}).");
        if (MinSnrGamma is { } g && !(g > 0)) throw new DiffuseException($"{Param.Of("TrainingConfig.MinSnrGamma")} must be positive (got {g}).");
        if (GradientAccumulation < 1) throw new DiffuseException($"{Param.Of("TrainingConfig.GradientAccumulation")} must be at least 1 (got {GradientAccumulation}).");
        if (GradientAccumulation > BatchSize) throw new DiffuseException($"{Param.Of("TrainingConfig.GradientAccumulation")} {GradientAccumulation} exceeds the batch of {BatchSize}: every micro-batch needs an example.");
        if (!(LabelDropout >= 0 && LabelDropout < 1)) throw new DiffuseException($"{Param.Of("TrainingConfig.LabelDropout")} must lie in [0, 1) (got {LabelDropout}).");
        if (CheckpointEvery < 1) throw new DiffuseException($"{Param.Of("TrainingConfig.CheckpointEvery")} must be at least 1 (got {CheckpointEvery}).");
    }

    /// <summary>
    /// The learning rate at a step (0-based): linear warm-up over <see cref="WarmupSteps"/>, then cosine decay to 0 at
    /// <see cref="Steps"/> (Loshchilov and Hutter 2017, without restarts).
    /// </summary>
    public double LearningRateAt(int step)
    {
        if (step < WarmupSteps) return LearningRate * (step + 1) / WarmupSteps;
        int decaySteps = Math.Max(1, Steps - WarmupSteps);
        double progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        return LearningRate * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
