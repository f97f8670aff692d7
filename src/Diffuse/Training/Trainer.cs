using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Data.Images;
using Diffuse.Distributed;
using Diffuse.Evaluation;
using Diffuse.IO;
using Diffuse.Models;
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
    /// <summary>File of the EMA weights used for sampling.</summary>
    public const string WeightsFile = "model.safetensors";
    /// <summary>File of the full training state used by --resume.</summary>
    public const string ResumeFile = "resume.safetensors";
    /// <summary>File of the configuration.</summary>
    public const string ConfigFile = "config.json";
    /// <summary>File of the loss history.</summary>
    public const string LossFile = "loss.csv";

    /// <summary>Number of timestep quarters whose loss is logged.</summary>
    public const int Quartiles = 4;

    private readonly Tensor _data;                // [N, ...] in model units (standardised columns, or pixels in [−1, 1]), float32
    private readonly Tensor? _labels;             // [N] int64 class labels, or null
    private readonly Tensor _alphaBars;           // [T] float32
    private readonly Tensor _snr;                 // [T] float32
    private readonly AdamW _optimizer;
    private readonly ICollective _collective;
    private readonly Tensor _flat;                // [P + 1 + 2Q (+ B)]: every parameter's gradient (as views), the loss, quartile sums and counts, per-example losses
    private readonly Tensor _gradients;           // _flat[0 .. P)
    private readonly Tensor _lossSlot;            // _flat[P]
    private readonly Tensor _quartileSlots;       // _flat[P + 1 .. P + 1 + 2Q): loss sum per quarter, then example count per quarter
    private readonly Tensor? _exampleLossSlots;   // _flat[P + 1 + 2Q .. + B): with importance sampling, each position's loss
    private readonly IDataDecoder _decoder;       // L_0 of the hybrid loss: discretised Gaussian for 8-bit images, Gaussian for tables
    private TimestepImportance? _importance;      // the loss history of importance sampling, identical on every rank
    private long[] _stepTimesteps = Array.Empty<long>();   // with importance sampling: this step's timestep per position
    private double[] _stepWeights = Array.Empty<double>(); // and its weight 1/(T·p_t)
    private readonly List<(int Step, double Loss)> _losses = new();
    private readonly List<double[]> _quartileLosses = new();
    private int[]? _permutation;
    private long _permutationEpoch = -1;

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
        _alphaBars = tensor(Schedule.AlphaBars.ToArray(), dtype: ScalarType.Float32, device: Device).DetachFromDisposeScope();
        _snr = tensor(Enumerable.Range(0, Schedule.Timesteps).Select(Schedule.Snr).ToArray(), dtype: ScalarType.Float32, device: Device).DetachFromDisposeScope();
        manual_seed((long)(config.Training.Seed % long.MaxValue));
        Network = config.CreateNetwork();
        Ema = config.CreateNetwork();
        if (Device.type != DeviceType.CPU)
        {
            // Initialised on the CPU from the seed (the same weights on every device), then moved before the optimizer sees them.
            Network.to(Device);
            Ema.to(Device);
        }
        ExponentialMovingAverage.CopyInto(Ema, Network);
        Ema.eval();
        foreach (var p in Ema.parameters()) p.requires_grad = false;
        _optimizer = new AdamW(Network.parameters());

        // One flat buffer holds every gradient, so that a single all-reduce per step sums them all (no copies): each
        // parameter's gradient is a view of it, and backward accumulates into existing gradients in place.
        var parameters = Network.parameters().ToArray();
        long count = parameters.Sum(p => p.numel());
        int exampleSlots = config.Formulation.ImportanceSampling ? config.Training.BatchSize : 0;
        _flat = zeros(count + 1 + 2 * Quartiles + exampleSlots, dtype: ScalarType.Float32, device: Device).DetachFromDisposeScope();
        _gradients = _flat.narrow(0, 0, count).DetachFromDisposeScope();
        _lossSlot = _flat.narrow(0, count, 1).DetachFromDisposeScope();
        _quartileSlots = _flat.narrow(0, count + 1, 2 * Quartiles).DetachFromDisposeScope();
        if (exampleSlots > 0)
        {
            _exampleLossSlots = _flat.narrow(0, count + 1 + 2 * Quartiles, exampleSlots).DetachFromDisposeScope();
            _importance = new TimestepImportance(Schedule.Timesteps);
        }
        _decoder = config.Data.IsImage ? new DiscretizedGaussianDecoder() : new GaussianDecoder();
        using (no_grad())
        using (NewDisposeScope())
        {
            long offset = 0;
            foreach (var p in parameters)
            {
                p.grad = _flat.narrow(0, offset, p.numel()).view(p.shape);
                offset += p.numel();
            }
        }
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
    /// Prepares training on <paramref name="data"/> [N, D] in its original units: fits the standardisation, records
    /// the data's description and builds the network from the seed. <paramref name="network"/>'s dimension is taken
    /// from the data, and its output multiplier from <paramref name="formulation"/> (default DDPM; an EDM formulation
    /// without settings gets σ_data = 1, the standard deviation of standardised columns). With a
    /// <paramref name="collective"/> of several ranks, every rank must call this with the same data and settings
    /// (checked); the initial weights are broadcast from rank 0.
    /// </summary>
    public static Trainer Create(Tensor data, string source, TrainingConfig? training = null, ScheduleConfig? schedule = null,
        Prediction prediction = Prediction.Epsilon, MlpConfig? network = null, IReadOnlyList<string>? columns = null, double holdout = 0,
        ICollective? collective = null, FormulationConfig? formulation = null, Device? device = null)
    {
        collective ??= SingleProcessCollective.Instance;
        training ??= new TrainingConfig();
        schedule ??= new ScheduleConfig();
        formulation = WithDefaultEdm(formulation ?? new FormulationConfig(), sigmaData: 1.0);
        CheckSettings(training, schedule, prediction, formulation, collective);
        if (data.dim() != 2) throw new DiffuseException($"training data must be a table [rows, columns]; got shape [{string.Join(", ", data.shape)}].");
        int rows = (int)data.shape[0], dims = (int)data.shape[1];
        if (rows < 2) throw new DiffuseException($"training needs at least two rows of data; {source} has {rows}.");
        var names = columns?.ToArray() ?? (dims == 2 ? new[] { "x", "y" } : Enumerable.Range(1, dims).Select(i => $"x{i}").ToArray());
        var normalisation = Standardization.Fit(data, names);
        double[] min, max;
        using (var scope = NewDisposeScope())
        {
            var d = data.to_type(ScalarType.Float64);
            min = d.amin(new long[] { 0 }).data<double>().ToArray();
            max = d.amax(new long[] { 0 }).data<double>().ToArray();
        }
        var description = new DataDescription(source, names, normalisation.Mean, normalisation.Std, rows, Fingerprint(data), holdout, min, max);
        var mlp = (network ?? new MlpConfig(dims)) with { Dimensions = dims };
        if (formulation.LearnedVariance) mlp = mlp with { OutputMultiplier = 2 };
        var config = new DiffusionModelConfig(mlp, schedule, prediction, description, training) { Formulation = formulation };
        config.Validate();
        CheckSameSetUp(config, collective);
        Trainer trainer;
        using (var applyScope = NewDisposeScope()) trainer = new Trainer(config, normalisation.Apply(data), null, collective, device);
        trainer.BroadcastState();
        return trainer;
    }

    /// <summary>
    /// Prepares training on images (pixels mapped to [−1, 1]); with labels and a <paramref name="network"/> whose
    /// <see cref="UNetConfig.NumClasses"/> is the data's class count (the default when the data is labelled), a
    /// class-conditional model trained with label dropout. <paramref name="network"/>'s channel count is taken from the
    /// data, and its output multiplier from <paramref name="formulation"/> (default DDPM; an EDM formulation without
    /// settings gets σ_data = 0.5, as Karras et al. use for images in [−1, 1]). With several ranks every rank must pass
    /// the same images (checked by fingerprint).
    /// </summary>
    public static Trainer Create(ImageDataset images, TrainingConfig? training = null, ScheduleConfig? schedule = null,
        Prediction prediction = Prediction.Epsilon, UNetConfig? network = null, ICollective? collective = null,
        FormulationConfig? formulation = null, Device? device = null)
    {
        collective ??= SingleProcessCollective.Instance;
        training ??= TrainingConfig.Images;
        schedule ??= new ScheduleConfig();
        formulation = WithDefaultEdm(formulation ?? new FormulationConfig(), sigmaData: 0.5);
        CheckSettings(training, schedule, prediction, formulation, collective);
        if (images.Count < 2) throw new DiffuseException($"training needs at least two images; {images.Source} has {images.Count}.");
        int classes = images.Labels is null ? 0 : images.ClassNames.Length;
        network = (network ?? new UNetConfig { Channels = images.Channels, NumClasses = classes }) with { Channels = images.Channels };
        if (formulation.LearnedVariance) network = network with { OutputChannelsMultiplier = 2 };
        if (network.NumClasses > 0 && images.Labels is null)
            throw new DiffuseException($"a class-conditional network needs labelled images, but {images.Source} has no labels. Train without classes.");
        if (network.NumClasses > 0 && network.NumClasses != classes)
            throw new DiffuseException($"the network is conditioned on {network.NumClasses} classes but {images.Source} has {classes}.");
        var description = new DataDescription(images.Source, Array.Empty<string>(), Array.Empty<double>(), Array.Empty<double>(), images.Count,
            Fingerprint(images), ImageShape: new[] { images.Channels, images.Height, images.Width },
            ClassNames: network.NumClasses > 0 ? images.ClassNames : null, Licence: images.Licence);
        var config = new DiffusionModelConfig(network, schedule, prediction, description, training) { Formulation = formulation };
        config.Validate();
        CheckSameSetUp(config, collective);
        return FromImages(config, images, collective, folder: null, device);
    }

    /// <summary>Restores an image run from <paramref name="folder"/>, checking that <paramref name="images"/> are the images it was trained on.</summary>
    public static Trainer Resume(string folder, ImageDataset images, int? steps = null, ICollective? collective = null, Device? device = null)
    {
        collective ??= SingleProcessCollective.Instance;
        var config = LoadForResume(folder, steps, collective);
        if (!config.Data.IsImage)
            throw new DiffuseException($"the run in '{folder}' was trained on a table ({config.Data.Source}), not on images. Resume with the same {Param.Of("Trainer.Resume(images)", "images")}.");
        if (Fingerprint(images) != config.Data.Fingerprint)
            throw new DiffuseException($"the images given ({images.Source}: {images.Count} images) are not the images the run in '{folder}' was trained on ({config.Data.Source}: {config.Data.Count} images). Resume with the same {Param.Of("Trainer.Resume(images)", "images")}.");
        return FromImages(config, images, collective, folder, device);
    }

    private static Trainer FromImages(DiffusionModelConfig config, ImageDataset images, ICollective collective, string? folder, Device? device)
    {
        // Not inside a dispose scope: the networks' parameters must outlive it.
        var labels = config.Network.ClassCount > 0 && images.Labels is { } l ? tensor(l) : null;
        var x = ImageDataset.ToModelRange(images.Images);
        Trainer trainer;
        try
        {
            trainer = new Trainer(config, x, labels, collective, device);
        }
        finally
        {
            x.Dispose();
            labels?.Dispose();
        }
        if (folder is not null && collective.Rank == 0) trainer.LoadState(folder);
        trainer.BroadcastState();
        trainer._ownFolder = folder is null ? null : Path.GetFullPath(folder);
        return trainer;
    }

    private static void CheckSettings(TrainingConfig training, ScheduleConfig schedule, Prediction prediction, FormulationConfig formulation,
        ICollective collective)
    {
        training.Validate();
        schedule.Validate();
        formulation.Validate(prediction, schedule, training);
        PredictionConversion.RequireCompatible(prediction, schedule.ZeroTerminalSnr);
        CheckBatchCoversRanks(training.BatchSize, collective);
    }

    /// <summary>An EDM formulation given without its settings gets the defaults with the data's σ_data.</summary>
    private static FormulationConfig WithDefaultEdm(FormulationConfig formulation, double sigmaData) =>
        formulation.IsEdm && formulation.Edm is null ? formulation with { Edm = new EdmConfig(SigmaData: sigmaData) } : formulation;

    private static DiffusionModelConfig LoadForResume(string folder, int? steps, ICollective collective)
    {
        var config = collective.Rank == 0 ? DiffusionModelConfig.Load(Path.Combine(folder, ConfigFile)) : null;
        string json = collective.BroadcastString(config?.ToJson());
        config ??= JsonSerializer.Deserialize<DiffusionModelConfig>(json, DiffusionModelConfig.JsonOptions)
            ?? throw new InvalidOperationException("rank 0 broadcast an empty configuration.");
        if (steps is { } s) config = config with { Training = config.Training with { Steps = s } };
        config.Training.Validate();
        CheckBatchCoversRanks(config.Training.BatchSize, collective);
        return config;
    }

    /// <summary>
    /// Restores a run from <paramref name="folder"/> to continue it, checking that <paramref name="data"/> is the data it
    /// was trained on; <paramref name="steps"/> extends the run when given. With a <paramref name="collective"/> of
    /// several ranks only rank 0 reads <paramref name="folder"/>; the configuration and the whole training state are
    /// broadcast from it, so a checkpoint written by any number of ranks resumes on any other number.
    /// </summary>
    public static Trainer Resume(string folder, Tensor data, int? steps = null, ICollective? collective = null, Device? device = null)
    {
        collective ??= SingleProcessCollective.Instance;
        var config = LoadForResume(folder, steps, collective);
        if (config.Data.IsImage)
            throw new DiffuseException($"the run in '{folder}' was trained on images ({config.Data.Source}), not on a table. Resume with the same {Param.Of("Trainer.Resume(data)", "data")}.");
        string fingerprint = Fingerprint(data);
        if (fingerprint != config.Data.Fingerprint || data.dim() != 2 || data.shape[1] != config.Data.Columns.Length)
            throw new DiffuseException($"the data given ({data.shape[0]} rows × {(data.dim() > 1 ? data.shape[1] : 1)} columns) is not the data the run in '{folder}' was trained on ({config.Data.Source}: {config.Data.Count} rows × {config.Data.Columns.Length} columns). Resume with the same {Param.Of("Trainer.Resume(data)", "data")}.");
        var normalisation = new Standardization(config.Data.Mean, config.Data.Std);
        Trainer trainer;
        using (var scope = NewDisposeScope()) trainer = new Trainer(config, normalisation.Apply(data), null, collective, device);
        if (collective.Rank == 0) trainer.LoadState(folder);
        trainer.BroadcastState();
        trainer._ownFolder = Path.GetFullPath(folder);
        return trainer;
    }

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
            using (no_grad())
            {
                _quartileSlots.zero_();
                _exampleLossSlots?.zero_();
            }
        }
        if (_importance is not null)
        {
            // Every rank draws the timesteps of the whole batch from the same state, so they agree on all of them.
            var uniforms = new double[batch];
            for (int j = 0; j < batch; j++) uniforms[j] = SeededNoise.Uniform(training.Seed, Stream(Step, 1), (ulong)j);
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
            using (no_grad()) _lossSlot.fill_(partialLoss);
            _collective.AllReduceSum(_flat);   // one fused all-reduce: every gradient, the loss and the quartile sums
            loss = _lossSlot.item<float>();
            if (!double.IsFinite(loss))
                throw new DiffuseException($"the training loss became {loss} at step {Step + 1}; the last checkpoint is intact. Lower {Param.Of("TrainingConfig.LearningRate")} or enable gradient clipping, then resume.");
            norm = _gradients.norm().item<float>();
            if (training.GradientClip > 0)
            {
                // As torch.nn.utils.clip_grad_norm_, on the global gradient: scale by max / (norm + 1e-6) when below 1.
                double coefficient = training.GradientClip / (norm + 1e-6);
                if (coefficient < 1) using (no_grad()) _gradients.mul_(coefficient);
            }
            _optimizer.Step(training.LearningRateAt(Step), training.WeightDecay);
            ExponentialMovingAverage.Update(Ema, Network, ExponentialMovingAverage.DecayAt(training.EmaDecay, Step));
            if (_importance is not null)
            {
                var losses = _exampleLossSlots!.data<float>().ToArray().Select(v => (double)v).ToArray();
                _importance.Record(_stepTimesteps, losses);
            }
        }
        var sums = _quartileSlots.data<float>().ToArray();
        var quartiles = new double[Quartiles];
        for (int q = 0; q < Quartiles; q++) quartiles[q] = sums[Quartiles + q] > 0 ? sums[q] / sums[Quartiles + q] : double.NaN;
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
        var indices = BatchIndices(Step, batch, part);
        var positions = new long[part.Count];
        for (int i = 0; i < part.Count; i++) positions[i] = part.Start + i;   // the position in the global batch alone decides the random draws
        using var scope = NewDisposeScope();
        // Dropout draws from torch's generator: reseed it from (seed, step, first position) so that a resumed run draws
        // the same masks as an uninterrupted one (the masks do depend on how the batch is split into parts and ranks).
        manual_seed((long)(SeededNoise.Key(training.Seed, Stream(Step, 0) ^ 0x64726F70UL, (ulong)part.Start) & long.MaxValue));
        var x0 = _data.index_select(0, tensor(indices, device: Device));
        if (training.HorizontalFlip && x0.dim() == 4) x0 = ImageDataset.RandomHorizontalFlip(x0, training.Seed, Step, positions);
        Tensor? classes = null;
        if (_labels is not null)
        {
            var labels = _labels.index_select(0, tensor(indices)).data<long>().ToArray();   // on the CPU
            for (int i = 0; i < labels.Length; i++)
                if (SeededNoise.Uniform(training.Seed, Stream(Step, 0), (ulong)positions[i]) < training.LabelDropout) labels[i] = Network.NullClass;
            classes = tensor(labels, device: Device);
        }
        var eps = SeededNoise.Normal(training.Seed, Stream(Step, 2), positions, x0.shape[1..], Device);
        var (perExample, recorded, quarter) = Config.Formulation.IsEdm ? EdmLoss(x0, eps, positions, classes) : DdpmLoss(x0, eps, positions, classes);
        // This part's share of the global mean: its examples' sum over the global batch size. Summed over the parts and
        // the ranks (with the gradients) it is the mean over the global batch, however unevenly the batch divides.
        var partial = perExample.sum() / batch;
        partial.backward();
        using (no_grad())
        {
            var detached = perExample.detach();
            _quartileSlots.narrow(0, 0, Quartiles).index_add_(0, quarter, detached, 1);
            _quartileSlots.narrow(0, Quartiles, Quartiles).index_add_(0, quarter, ones_like(detached), 1);
            _exampleLossSlots?.index_copy_(0, tensor(positions, device: Device), recorded.detach().to_type(ScalarType.Float32));
        }
        return partial.item<float>();
    }

    /// <summary>
    /// The DDPM loss per example (Ho et al. 2020, eq. 14; with learned variances plus λ·L_vlb, Nichol and Dhariwal 2021,
    /// eq. 16): the loss to backpropagate (times the importance weight when timesteps are drawn by importance), the
    /// unweighted loss that the importance sampler records, and each example's timestep quarter.
    /// </summary>
    private (Tensor Loss, Tensor Recorded, Tensor Quarter) DdpmLoss(Tensor x0, Tensor eps, long[] positions, Tensor? classes)
    {
        var training = Config.Training;
        var formulation = Config.Formulation;
        var timesteps = new long[positions.Length];
        for (int i = 0; i < positions.Length; i++)
            timesteps[i] = _importance is not null
                ? _stepTimesteps[positions[i]]
                : SeededNoise.UniformInt(training.Seed, Stream(Step, 1), (ulong)positions[i], Schedule.Timesteps);
        var t = tensor(timesteps, device: Device);
        var broadcast = new long[x0.dim()];
        Array.Fill(broadcast, 1L);
        broadcast[0] = positions.Length;
        var alphaBar = _alphaBars.index_select(0, t).view(broadcast);
        var z = GaussianProcess.Noise(x0, alphaBar, eps);
        var output = Network.call(z, t.to_type(ScalarType.Float32), classes);
        Tensor? varianceOutput = null;
        if (formulation.LearnedVariance) (output, varianceOutput) = LearnedVariance.Split(output, x0.shape[1]);
        var target = PredictionConversion.Target(Config.Prediction, x0, eps, alphaBar);
        var perExample = (output - target).square().flatten(1).mean(new long[] { 1 });
        if (training.MinSnrGamma is { } gamma)
            perExample = perExample * PredictionConversion.MinSnrWeight(Config.Prediction, _snr.index_select(0, t), gamma);
        if (varianceOutput is not null)
            perExample = HybridLoss.Combine(perExample,
                HybridLoss.VlbTerm(Schedule, Config.Prediction, x0, z, t, output, varianceOutput, _decoder), Schedule.Timesteps, formulation.HybridLambda);
        var recorded = perExample;
        if (_importance is not null)
            perExample = perExample * tensor(positions.Select(j => (float)_stepWeights[j]).ToArray(), device: Device);
        var quarter = (t * Quartiles).div(Schedule.Timesteps, rounding_mode: RoundingMode.floor);
        return (perExample, recorded, quarter);
    }

    /// <summary>
    /// The EDM loss per example (Karras et al. 2022, eq. 8 with Table 1): ln σ ~ N(P_mean, P_std²) from its own seeded
    /// stream, the preconditioned network's λ(σ)-weighted error; returned as the loss, the same tensor as the recorded
    /// loss, and each example's quarter of [ln σ_min, ln σ_max] (the model's schedule, low noise first).
    /// </summary>
    private (Tensor Loss, Tensor Recorded, Tensor Quarter) EdmLoss(Tensor x0, Tensor eps, long[] positions, Tensor? classes)
    {
        var edm = Config.Formulation.Edm!;
        var normal = SeededNoise.Normal(Config.Training.Seed, Stream(Step, EdmSigmaDomain), positions, ReadOnlySpan<long>.Empty, Device);
        var sigma = EdmTraining.SampleSigma(normal, edm);
        var noise = EdmTraining.Noise(eps, sigma);
        var output = Network.call(EdmTraining.NetworkInput(x0, noise, sigma, edm.SigmaData), EdmTraining.NoiseConditioning(sigma), classes);
        var perExample = EdmTraining.Loss(output, x0, noise, sigma, edm.SigmaData);
        double logMin = Math.Log(edm.SigmaMin), logMax = Math.Log(edm.SigmaMax);
        var quarter = ((sigma.log() - logMin) * (Quartiles / (logMax - logMin))).floor().clamp(0, Quartiles - 1).to_type(ScalarType.Int64);
        return (perExample, perExample, quarter);
    }

    /// <summary>
    /// Writes the checkpoint to <paramref name="folder"/>: EMA weights, resume state, loss history, then config.json last;
    /// each file atomically. Only rank 0 writes; on other ranks this does nothing (every rank holds the same state).
    /// </summary>
    public void Save(string folder)
    {
        if (_collective.Rank != 0) return;
        Directory.CreateDirectory(folder);
        var metadata = new Dictionary<string, string> { ["format"] = DiffusionModelConfig.FormatName, ["step"] = Step.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        using (var scope = NewDisposeScope())
        {
            Safetensors.Save(Path.Combine(folder, WeightsFile), OnCpu(Ema.state_dict()), metadata);
            var state = new Dictionary<string, Tensor>();
            foreach (var (name, value) in Network.state_dict()) state["network." + name] = value.cpu();
            foreach (var (name, value) in Ema.state_dict()) state["ema." + name] = value.cpu();
            foreach (var (name, value) in _optimizer.State()) state["adamw." + name] = value.cpu();
            if (_importance is not null) state[ImportanceStateKey] = _importance.ToState();
            Safetensors.Save(Path.Combine(folder, ResumeFile), state,
                new Dictionary<string, string>(metadata) { ["adamw_step"] = _optimizer.StepCount.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        }
        var csv = new System.Text.StringBuilder("step,loss,loss_q1,loss_q2,loss_q3,loss_q4\n");
        for (int i = 0; i < _losses.Count; i++)
        {
            var (s, l) = _losses[i];
            csv.Append(s).Append(',').Append(l.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
            foreach (double q in _quartileLosses[i]) csv.Append(',').Append(double.IsNaN(q) ? "" : q.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
            csv.Append('\n');
        }
        AtomicFile.WriteAllText(Path.Combine(folder, LossFile), csv.ToString());
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigFile), Config.ToJson());
        _ownFolder = Path.GetFullPath(folder);
        _savedStep = Step;
        CheckpointWritten?.Invoke(this, new CheckpointWrittenEventArgs(folder, Step));
    }

    private static Dictionary<string, Tensor> OnCpu(Dictionary<string, Tensor> state) => state.ToDictionary(kv => kv.Key, kv => kv.Value.cpu());

    /// <summary>
    /// SHA-256 (first 16 hex digits) of the whole training state: step, optimizer step count, and the bytes of every
    /// tensor of the network, the EMA and the optimizer, and the importance sampler's history. Equal on every rank of a
    /// correct data-parallel run.
    /// </summary>
    public string StateChecksum()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(BitConverter.GetBytes((long)Step));
        hash.AppendData(BitConverter.GetBytes(_optimizer.StepCount));
        using (var scope = NewDisposeScope())
        {
            foreach (var (_, value) in Network.state_dict()) hash.AppendData(value.cpu().contiguous().bytes);
            foreach (var (_, value) in Ema.state_dict()) hash.AppendData(value.cpu().contiguous().bytes);
            foreach (var (_, value) in _optimizer.State()) hash.AppendData(value.cpu().contiguous().bytes);
            if (_importance is not null) hash.AppendData(_importance.ToState().bytes);
        }
        return Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant();
    }

    /// <summary>A model view of the current EMA weights (shares them; valid while this trainer lives).</summary>
    public DiffusionModel ToModel() => DiffusionModel.FromNetwork(Config, Ema, ownsNetwork: false);

    /// <summary>
    /// Makes every rank's state rank 0's: step, optimizer step count, loss history, every tensor of the network, the
    /// EMA and the optimizer, and the importance sampler's history (one broadcast each, in the same order on every rank).
    /// </summary>
    private void BroadcastState()
    {
        if (_collective.Size == 1) return;
        Span<long> header = stackalloc long[] { Step, _optimizer.StepCount, _losses.Count };
        const int row = 2 + Quartiles;
        _collective.Broadcast(header);
        using (var scope = NewDisposeScope())
        {
            foreach (var (_, value) in Network.state_dict()) _collective.Broadcast(value);
            foreach (var (_, value) in Ema.state_dict()) _collective.Broadcast(value);
            foreach (var (_, value) in _optimizer.State()) _collective.Broadcast(value);
            if (_importance is not null)
            {
                var importance = _importance.ToState().contiguous();
                _collective.Broadcast(importance);
                _importance = TimestepImportance.FromState(importance);
            }
        }
        var history = new double[row * header[2]];
        if (_collective.Rank == 0)
            for (int i = 0; i < _losses.Count; i++)
            {
                (history[row * i], history[row * i + 1]) = (_losses[i].Step, _losses[i].Loss);
                _quartileLosses[i].CopyTo(history, row * i + 2);
            }
        _collective.Broadcast(history.AsSpan());
        Step = (int)header[0];
        _optimizer.StepCount = header[1];
        Config = Config with { Step = Step };
        _losses.Clear();
        _quartileLosses.Clear();
        for (int i = 0; i < header[2]; i++)
        {
            _losses.Add(((int)history[row * i], history[row * i + 1]));
            _quartileLosses.Add(history.AsSpan(row * i + 2, Quartiles).ToArray());
        }
    }

    private static void CheckBatchCoversRanks(int batch, ICollective collective)
    {
        if (batch < collective.Size)
            throw new DiffuseException($"{Param.Of("TrainingConfig.BatchSize")} {batch} is smaller than the number of processes ({collective.Size}): every process needs at least one example of each batch. Raise {Param.Of("TrainingConfig.BatchSize")} (it is the global batch, split over the processes) or launch fewer processes.");
    }

    /// <summary>Checks that every rank was given the same data and settings as rank 0 (different CSV files on different machines, say).</summary>
    private static void CheckSameSetUp(DiffusionModelConfig config, ICollective collective)
    {
        if (collective.Size == 1) return;
        string mine = config.ToJson();
        string root = collective.BroadcastString(collective.Rank == 0 ? mine : null);
        if (root == mine) return;
        var rootConfig = JsonSerializer.Deserialize<DiffusionModelConfig>(root, DiffusionModelConfig.JsonOptions);
        if (rootConfig?.Data.Fingerprint != config.Data.Fingerprint)
            throw new DiffuseException($"rank {collective.Rank} read other training data than rank 0 ({config.Data.Source}: {config.Data.Count} rows, fingerprint {config.Data.Fingerprint}; rank 0: {rootConfig?.Data.Count} rows, fingerprint {rootConfig?.Data.Fingerprint}). Give every process the same {Param.Of("Trainer.Create(data)", "data")} (the same file on every machine).");
        throw new DiffuseException($"rank {collective.Rank} was started with other training options than rank 0. Launch every process with the same command line.");
    }

    private void LoadState(string folder)
    {
        string path = Path.Combine(folder, ResumeFile);
        if (!File.Exists(path)) throw new DiffuseException($"'{folder}' has no {ResumeFile}: it holds weights only and cannot be resumed. Train again without {Param.Of("Trainer.Resume")}.");
        var header = Safetensors.ReadHeader(path);
        int step = int.Parse(header.Metadata.GetValueOrDefault("step", "-1"), System.Globalization.CultureInfo.InvariantCulture);
        if (step != Config.Step)
            throw new DiffuseException($"'{folder}' is inconsistent: config.json says step {Config.Step} but {ResumeFile} holds step {step} (an interrupted save?). Train again without {Param.Of("Trainer.Resume")}.");
        using var scope = NewDisposeScope();
        var state = Safetensors.Load(path);
        StateDicts.LoadInto(Network, Prefixed(state, "network."), path);
        StateDicts.LoadInto(Ema, Prefixed(state, "ema."), path);
        long adamStep = long.Parse(header.Metadata.GetValueOrDefault("adamw_step", "0"), System.Globalization.CultureInfo.InvariantCulture);
        _optimizer.Load(Prefixed(state, "adamw."), adamStep, path);
        if (_importance is not null)
        {
            if (!state.TryGetValue(ImportanceStateKey, out var history))
                throw new DiffuseException($"{path} has no '{ImportanceStateKey}', which a run with importance sampling saves; it was not written by this run. Train again without {Param.Of("Trainer.Resume")}.");
            if (history.dim() != 2 || history.shape[0] != Schedule.Timesteps)
                throw new DiffuseException($"{path}: '{ImportanceStateKey}' has shape [{string.Join(", ", history.shape)}] but the schedule has {Schedule.Timesteps} timesteps. Train again without {Param.Of("Trainer.Resume")}.");
            _importance = TimestepImportance.FromState(history);
        }
        Step = step;
        _losses.Clear();
        _quartileLosses.Clear();
        string lossPath = Path.Combine(folder, LossFile);
        if (File.Exists(lossPath))
        {
            foreach (var line in File.ReadLines(lossPath).Skip(1))
            {
                var parts = line.Split(',');
                if (parts.Length >= 2 && int.TryParse(parts[0], System.Globalization.CultureInfo.InvariantCulture, out int s) && s <= step
                    && double.TryParse(parts[1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double l))
                {
                    _losses.Add((s, l));
                    var quartiles = new double[Quartiles];
                    for (int q = 0; q < Quartiles; q++)
                        quartiles[q] = parts.Length > 2 + q && double.TryParse(parts[2 + q], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double v) ? v : double.NaN;
                    _quartileLosses.Add(quartiles);
                }
            }
        }
    }

    private static Dictionary<string, Tensor> Prefixed(Dictionary<string, Tensor> state, string prefix) =>
        state.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);

    /// <summary>
    /// Row indices of <paramref name="shard"/> of the batch at <paramref name="step"/>: positions step·B + j, j in the
    /// shard, of the endless sequence of per-epoch permutations.
    /// </summary>
    private long[] BatchIndices(int step, int batch, BatchShard shard)
    {
        int rows = (int)_data.shape[0];
        var result = new long[shard.Count];
        for (int i = 0; i < shard.Count; i++)
        {
            long position = (long)step * batch + shard.Start + i;
            long epoch = position / rows;
            if (epoch != _permutationEpoch)
            {
                _permutation = SeededNoise.Permutation(Config.Training.Seed, Stream(epoch, 3), rows);
                _permutationEpoch = epoch;
            }
            result[i] = _permutation![(int)(position % rows)];
        }
        return result;
    }

    /// <summary>The random-stream domain of EDM's noise levels (0–3: label dropout, timesteps, noise, permutation).</summary>
    private const int EdmSigmaDomain = 4;

    /// <summary>The key of the state of <see cref="TimestepImportance"/> in <see cref="ResumeFile"/>.</summary>
    private const string ImportanceStateKey = "importance.history";

    /// <summary>
    /// The stream of <paramref name="domain"/> at <paramref name="counter"/> (a step or an epoch). Domains 0–3 keep
    /// (counter &lt;&lt; 2) | domain, the streams of runs saved before more domains existed, so that those resume
    /// unchanged; with counters below 2^31 these values stay below 2^33. Domains from 4 set the top bit,
    /// 2^63 | domain·2^32 | counter, which no counter of domains 0–3 reaches.
    /// </summary>
    private static ulong Stream(long counter, int domain)
    {
        if (domain < 4) return ((ulong)counter << 2) | (uint)domain;
        if (counter is < 0 or > uint.MaxValue) throw new InvalidOperationException($"stream counter {counter} of domain {domain} exceeds 32 bits.");
        return (1UL << 63) | ((ulong)(uint)domain << 32) | (ulong)counter;
    }

    /// <summary>The first 16 hex digits of the SHA-256 of the images' bytes, then (when labelled) their labels.</summary>
    public static string Fingerprint(ImageDataset images)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var scope = NewDisposeScope()) hash.AppendData(images.Images.contiguous().bytes);
        if (images.Labels is { } labels) hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(labels.AsSpan()));
        return Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant();
    }

    /// <summary>The first 16 hex digits of the SHA-256 of the rows as float32.</summary>
    public static string Fingerprint(Tensor data)
    {
        using var scope = NewDisposeScope();
        var bytes = data.to_type(ScalarType.Float32).contiguous().bytes;
        return Convert.ToHexString(SHA256.HashData(bytes))[..16].ToLowerInvariant();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _optimizer.Dispose();
        _lossSlot.Dispose();
        _quartileSlots.Dispose();
        _exampleLossSlots?.Dispose();
        _labels?.Dispose();
        _gradients.Dispose();
        _flat.Dispose();
        Network.Dispose();
        Ema.Dispose();
        _data.Dispose();
        _alphaBars.Dispose();
        _snr.Dispose();
    }
}
