using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Data.Images;
using Diffuse.Denoisers;
using Diffuse.Distributed;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Formulations;
using Diffuse.IO;
using Diffuse.Models;
using Diffuse.Optimization;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Training;

/// <summary>Progress after one optimizer step.</summary>
/// <param name="Step">Steps completed.</param>
/// <param name="TotalSteps">Steps the run will make.</param>
/// <param name="Loss">This step's loss.</param>
/// <param name="SmoothedLoss">Exponential average of the loss over about 100 steps.</param>
/// <param name="LearningRate">The learning rate used for this step.</param>
/// <param name="StepsPerSecond">Throughput since the run (or resume) started.</param>
/// <param name="Remaining">Estimated time to the last step.</param>
/// <param name="GradientNorm">The global gradient's L2 norm before clipping.</param>
/// <param name="QuartileLosses">
/// Smoothed loss of the examples whose timestep fell in each quarter of [0, T) (low noise first), which shows where the
/// network still learns; NaN for a quarter not seen yet.
/// </param>
public sealed record TrainingProgress(int Step, int TotalSteps, double Loss, double SmoothedLoss, double LearningRate,
    double StepsPerSecond, TimeSpan Remaining, double GradientNorm, double[] QuartileLosses);

/// <summary>
/// Trains a diffusion model in the formulation of its <see cref="FormulationConfig"/>. DDPM minimises the simple loss
/// of Ho et al. 2020 (eq. 14): the MSE between the network's prediction at z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε and its target
/// (ε, x0 or v), with t uniform, optionally weighted by min-SNR-γ; with learned variances it adds λ·L_vlb (Nichol and
/// Dhariwal 2021, eq. 16, <see cref="HybridLoss"/>), optionally with timesteps drawn by importance (eq. 18,
/// <see cref="TimestepImportance"/>). EDM minimises the λ(σ)-weighted loss of the preconditioned denoiser with ln σ
/// normal (Karras et al. 2022, eq. 8 and Table 1, <see cref="EdmTraining"/>). AdamW, warm-up then cosine decay,
/// gradient clipping and an EMA of the weights. Every random choice (initialisation, data order, timesteps or noise
/// levels, noise) is a function of the seed and the step, so a resumed run continues exactly as an uninterrupted one
/// would; the importance sampler's loss history is saved with the resume state.
/// <para>
/// Data-parallel training: with an <see cref="ICollective"/> of N ranks (e.g. under <c>mpiexec -n N</c>), rank r takes
/// the contiguous positions <see cref="Distributed.Collective.Shard"/> of every global batch of <see cref="TrainingConfig.BatchSize"/>
/// examples. Because every random value is a function of (seed, step, position), a rank computes for its positions
/// exactly what a single process computes for them. Each rank backpropagates the sum of its examples' losses divided by
/// the global batch size into one flat gradient buffer (the parameters' gradients are views of it, with the loss in a
/// last slot); one all-reduce sums it over the ranks, giving every rank the gradient and loss of the global batch; then
/// every rank clips and applies the same update. Parameters, EMA and optimizer state are broadcast from rank 0 at the
/// start and on resume, and only rank 0 writes files. The result equals a single-process run to float rounding. With
/// importance sampling the buffer also has one slot per position of the global batch: each rank writes its examples'
/// losses into its positions and zeros stay elsewhere, so the same all-reduce hands every rank the losses of the whole
/// batch (each sum has one nonzero term, so it is exact), every rank records them, and the timestep distributions stay
/// identical everywhere.
/// </para>
/// <para>
/// The same trainer serves tables (an MLP on standardised columns) and images (a U-Net on pixels mapped to [−1, 1], with
/// optional random horizontal flips); labelled data trains a class-conditional network whose labels are dropped to the
/// null class with probability <see cref="TrainingConfig.LabelDropout"/>, for classifier-free guidance.
/// </para>
/// </summary>
public sealed partial class Trainer : IDisposable
{
    /// <summary>Number of timestep quarters whose loss is logged.</summary>
    public const int Quartiles = TrainingLoss.Quartiles;

    private readonly Tensor _data;                // [N, ...] in model units (standardised columns, or pixels in [−1, 1]), float32
    private readonly Tensor? _labels;             // [N] int64 class labels, or null
    private readonly Formulation _formulation;    // the noise levels, network conditioning and loss of the model's formulation
    private readonly ConditionedNetwork _conditioned;
    private readonly AdamW _optimizer;
    private readonly ICollective _collective;
    private readonly GradientBuffer _buffer;      // every gradient, the loss, quartile sums and counts (and per-position losses): one all-reduce
    private readonly BatchPlan _plan;             // which row fills each batch position
    private readonly IDataDecoder _decoder;       // L_0 of the hybrid loss: discretised Gaussian for 8-bit images, Gaussian for tables
    private TimestepImportance? _importance;      // the loss history of importance sampling, identical on every rank
    private long[] _stepTimesteps = Array.Empty<long>();   // with importance sampling: this step's timestep per position
    private double[] _stepWeights = Array.Empty<double>(); // and its weight 1/(T·p_t)
    private readonly List<(int Step, double Loss)> _losses = new();
    private readonly List<double[]> _quartileLosses = new();

    private Trainer(DiffusionModelConfig config, Tensor modelUnits, Tensor? labels, ICollective collective, Device? device)
    {
        Config = config;
        _collective = collective;
        Device = device ?? CPU;
        if (Device.type != DeviceType.CPU && collective.Size > 1)
            throw new DiffuseException($"data-parallel training runs on the CPU only (the MPI all-reduce reads host memory); device {Device} was asked for on {collective.Size} processes.");
        Schedule = config.CreateSchedule();
        _data = modelUnits.to(ScalarType.Float32, Device).contiguous().DetachFromDisposeScope();
        _labels = labels?.to_type(ScalarType.Int64).contiguous().DetachFromDisposeScope();
        _formulation = config.Formulation.Create();
        manual_seed((long)(config.Training.Seed % long.MaxValue));
        Network = config.CreateNetwork();
        Ema = config.CreateNetwork();
        if (Device.type != DeviceType.CPU)
        {
            // Initialised on the CPU from the seed (the same weights on every device), then moved before the optimizer sees them.
            Network.to(Device);
            Ema.to(Device);
        }
        _conditioned = ConditionedNetwork.From(Network);
        ExponentialMovingAverage.CopyInto(Ema, Network);
        Ema.eval();
        foreach (var p in Ema.parameters()) p.requires_grad = false;
        _optimizer = new AdamW(Network.parameters());

        int exampleSlots = _formulation.DrawsTimestepsByImportance ? config.Training.BatchSize : 0;
        _buffer = new GradientBuffer(Network.parameters().ToArray(), Quartiles, exampleSlots, Device);
        if (exampleSlots > 0) _importance = new TimestepImportance(Schedule.Timesteps);
        _decoder = config.Data.IsImage ? new DiscretizedGaussianDecoder() : new GaussianDecoder();
        _plan = new BatchPlan(config.Training.Seed, (int)_data.shape[0]);
    }

    /// <summary>The device the networks, the data and every tensor of a step live on (checkpoints are written from the CPU).</summary>
    public Device Device { get; }

    /// <summary>The resolved configuration (its <see cref="DiffusionModelConfig.Step"/> is updated as training goes).</summary>
    public DiffusionModelConfig Config { get; private set; }

    /// <summary>The noise schedule.</summary>
    public NoiseSchedule Schedule { get; }

    /// <summary>The network being optimised.</summary>
    public DiffusionNetwork Network { get; }

    /// <summary>The exponential moving average of <see cref="Network"/>, used for sampling.</summary>
    public DiffusionNetwork Ema { get; }

    /// <summary>What resuming repaired in the folder (leftovers of an interrupted checkpoint write), one line each.</summary>
    public IReadOnlyList<string> RepairNotes { get; private set; } = Array.Empty<string>();

    /// <summary>Optimizer steps completed.</summary>
    public int Step { get; private set; }

    /// <summary>The loss of every step so far.</summary>
    public IReadOnlyList<(int Step, double Loss)> Losses => _losses;

    /// <summary>For every step so far, the mean loss of its examples in each quarter of the timesteps (NaN when none fell there).</summary>
    public IReadOnlyList<double[]> QuartileLosses => _quartileLosses;

    /// <summary>
    /// With importance sampling (<see cref="FormulationConfig.ImportanceSampling"/>), the probabilities p_t the next
    /// step draws its timesteps from (uniform until every timestep has its loss history); null otherwise.
    /// </summary>
    public double[]? TimestepProbabilities => _importance?.Probabilities();

    /// <summary>The processes this trainer runs on (a single process unless given an MPI collective).</summary>
    public ICollective Collective => _collective;

    /// <summary>The global gradient's L2 norm before clipping, at the last step (NaN before the first).</summary>
    public double LastGradientNorm { get; private set; } = double.NaN;

    /// <summary>
    /// Makes one optimizer step on this rank's shard of the global batch and returns the loss of the whole global batch
    /// (identical on every rank).
    /// </summary>
    public double TrainStep()
    {
        var training = Config.Training;
        int batch = training.BatchSize;
        var shard = Distributed.Collective.Shard(batch, _collective.Rank, _collective.Size);
        using (var scope = NewDisposeScope())
        {
            _optimizer.ZeroGrad();
            _buffer.ZeroStatistics();
        }
        if (_importance is not null)
        {
            // Every rank draws the timesteps of the whole batch from the same state, so they agree on all of them.
            var uniforms = new double[batch];
            for (int j = 0; j < batch; j++) uniforms[j] = SeededNoise.Uniform(training.Seed, BatchPlan.Stream(Step, BatchPlan.TimestepDomain), (ulong)j);
            (_stepTimesteps, _stepWeights) = _importance.Sample(uniforms);
        }
        // Micro-batches split this rank's shard into consecutive parts; each backpropagates its share of the global mean,
        // so the gradients add up to exactly those of one pass over the shard.
        int parts = Math.Min(training.GradientAccumulation, Math.Max(1, shard.Count));
        double partialLoss = 0;
        for (int part = 0; part < parts; part++)
        {
            var micro = Distributed.Collective.Shard(shard.Count, part, parts);
            if (micro.Count == 0) continue;
            partialLoss += MicroBatch(new BatchShard(shard.Start + micro.Start, shard.Start + micro.End), batch);
        }
        double loss, norm;
        using (var scope = NewDisposeScope())
        {
            using (no_grad()) _buffer.Loss.fill_(partialLoss);
            _buffer.AllReduce(_collective);   // one fused all-reduce: every gradient, the loss and the quartile sums
            loss = _buffer.Loss.item<float>();
            if (!double.IsFinite(loss))
                throw new DiffuseException($"the training loss became {loss} at step {Step + 1}; "
                    + (_savedStep >= 0 ? $"the checkpoint of step {_savedStep} is intact, but resuming would repeat the same steps. " : "no checkpoint was written yet. ")
                    + $"Train again with a lower {Param.Of("TrainingConfig.LearningRate")}.");
            norm = _buffer.Gradients.norm().item<float>();
            if (training.GradientClip > 0)
            {
                // As torch.nn.utils.clip_grad_norm_, on the global gradient: scale by max / (norm + 1e-6) when below 1.
                double coefficient = training.GradientClip / (norm + 1e-6);
                if (coefficient < 1) using (no_grad()) _buffer.Gradients.mul_(coefficient);
            }
            _optimizer.Step(training.LearningRateAt(Step), training.WeightDecay);
            ExponentialMovingAverage.Update(Ema, Network, ExponentialMovingAverage.DecayAt(training.EmaDecay, Step));
            if (_importance is not null)
            {
                var losses = _buffer.ExampleLosses!.cpu().data<float>().ToArray().Select(v => (double)v).ToArray();
                _importance.Record(_stepTimesteps, losses);
            }
        }
        var quartiles = _buffer.QuartileMeans();
        Step++;
        Config = Config with { Step = Step };
        LastGradientNorm = norm;
        _losses.Add((Step, loss));
        _quartileLosses.Add(quartiles);
        return loss;
    }

    /// <summary>
    /// Forward and backward on the examples at positions <paramref name="part"/> of the current step's global batch:
    /// accumulates their share of the global mean loss into the gradients, their per-quarter loss sums and counts into
    /// the quartile slots and (with importance sampling) their losses into their positions' slots; returns their share
    /// of the loss.
    /// </summary>
    private double MicroBatch(BatchShard part, int batch)
    {
        var training = Config.Training;
        var indices = _plan.Indices(Step, batch, part);
        var positions = new long[part.Count];
        for (int i = 0; i < part.Count; i++) positions[i] = part.Start + i;   // the position in the global batch alone decides the random draws
        using var scope = NewDisposeScope();
        // Dropout draws from torch's generator: reseed it from (seed, step, first position) so that a resumed run draws
        // the same masks as an uninterrupted one (the masks do depend on how the batch is split into parts and ranks).
        manual_seed((long)(SeededNoise.Key(training.Seed, BatchPlan.Stream(Step, BatchPlan.LabelDropoutDomain) ^ StreamDomains.TrainingDropoutMasks, (ulong)part.Start) & long.MaxValue));
        var x0 = _data.index_select(0, tensor(indices, device: Device));
        if (training.HorizontalFlip && x0.dim() == 4) x0 = ImageDataset.RandomHorizontalFlip(x0, training.Seed, Step, positions);
        Tensor? classes = null;
        if (_labels is not null)
        {
            var labels = _labels.index_select(0, tensor(indices)).data<long>().ToArray();   // on the CPU
            for (int i = 0; i < labels.Length; i++)
                if (SeededNoise.Uniform(training.Seed, BatchPlan.Stream(Step, BatchPlan.LabelDropoutDomain), (ulong)positions[i]) < training.LabelDropout) labels[i] = Network.NullClass;
            classes = tensor(labels, device: Device);
        }
        var eps = SeededNoise.Normal(training.Seed, BatchPlan.Stream(Step, BatchPlan.NoiseDomain), positions, x0.shape[1..], Device);
        var (perExample, recorded, quarter) = _formulation.Loss(new TrainingBatch(x0, eps, positions, classes, _conditioned, Schedule, Config.Prediction,
            training.Seed, BatchPlan.Stream(Step, BatchPlan.TimestepDomain), BatchPlan.Stream(Step, BatchPlan.EdmSigmaDomain), training.MinSnrGamma, _decoder,
            _importance is null ? null : (_stepTimesteps, _stepWeights)));
        // This part's share of the global mean: its examples' sum over the global batch size. Summed over the parts and
        // the ranks (with the gradients) it is the mean over the global batch, however unevenly the batch divides.
        var partial = perExample.sum() / batch;
        partial.backward();
        using (no_grad())
        {
            var detached = perExample.detach();
            _buffer.QuartileSlots.narrow(0, 0, Quartiles).index_add_(0, quarter, detached, 1);
            _buffer.QuartileSlots.narrow(0, Quartiles, Quartiles).index_add_(0, quarter, ones_like(detached), 1);
            _buffer.ExampleLosses?.index_copy_(0, tensor(positions, device: Device), recorded.detach().to_type(ScalarType.Float32));
        }
        return partial.item<float>();
    }

    /// <summary>A model view of the current EMA weights (shares them; valid while this trainer lives).</summary>
    public DiffusionModel ToModel() => DiffusionModel.FromNetwork(Config, Ema, ownsNetwork: false);

    /// <inheritdoc />
    public void Dispose()
    {
        _optimizer.Dispose();
        _labels?.Dispose();
        _buffer.Dispose();
        Network.Dispose();
        Ema.Dispose();
        _data.Dispose();
        _formulation.Dispose();
    }
}
