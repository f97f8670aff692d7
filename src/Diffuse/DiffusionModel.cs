using Diffuse.Checkpoints;
using TorchSharp;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Data.Images;
using Diffuse.Denoisers;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Models;
using Diffuse.Runtime;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Training;
using static TorchSharp.torch;

namespace Diffuse;

/// <summary>
/// A trained diffusion model ready to sample and evaluate: its configuration, noise schedule, network (the EMA
/// weights) and data normalisation, read through the denoiser of its formulation (<see cref="Formulations.Formulation.CreateDenoiser"/>),
/// so sampling, guidance, the bound and the ODE likelihood work alike for all. For tables, inputs and outputs are in the data's original units; for images, in the
/// model range [−1, 1] (<see cref="ImageDataset.ToBytes"/> turns them into 8-bit pixels).
/// </summary>
public sealed partial class DiffusionModel : IDisposable
{
    private readonly bool _ownsNetwork;
    private readonly IConditionalDenoiser _networkDenoiser;
    private readonly (double[] Lower, double[] Upper)? _bounds;

    private DiffusionModel(DiffusionModelConfig config, DiffusionNetwork network, bool ownsNetwork, ConditionedNetwork? call = null)
    {
        Config = config;
        Schedule = config.CreateSchedule();
        Network = network;
        Normalization = new Standardization(config.Data.Mean, config.Data.Std);
        using (var formulation = config.Formulation.Create())
            _networkDenoiser = formulation.CreateDenoiser(call ?? ConditionedNetwork.From(network), Schedule, config.Prediction);
        NetworkDenoiser = (IDenoiser)_networkDenoiser;
        _bounds = ClampBounds(config);
        if (_bounds is { } bounds) ClampedDenoiser = new ClampedDenoiser(NetworkDenoiser, Schedule, bounds.Lower, bounds.Upper);
        _ownsNetwork = ownsNetwork;
    }

    /// <summary>
    /// A view of this model whose every network evaluation goes through <paramref name="call"/> (input, noise
    /// conditioning [B], labels [B] with −1 for "no class", or null), which must return what
    /// <see cref="ConditionedNetwork.From"/>(<see cref="Network"/>) would; everything else (formulation, guidance,
    /// clamping, samplers, defaults) is this model's. A server uses it to pool the evaluations of concurrent sampling runs,
    /// whatever their settings, into one batch. The view shares the weights and does not own them.
    /// </summary>
    public DiffusionModel ThroughNetwork(Func<Tensor, Tensor, Tensor?, Tensor> call) =>
        new(Config, Network, ownsNetwork: false, ConditionedNetwork.Custom(call, Network.ClassCount > 0))
        {
            Folder = Folder, RepairNotes = RepairNotes, ClampToDataRange = ClampToDataRange,
        };

    /// <summary>Samples per batch of <see cref="Sample"/> for image models (limits memory).</summary>
    public const int DefaultImageBatch = 256;

    /// <summary>Samples per batch of <see cref="Sample"/> for table models.</summary>
    public const int DefaultTableBatch = 4096;

    /// <summary>The configuration the model was trained with.</summary>
    public DiffusionModelConfig Config { get; }

    /// <summary>The noise schedule.</summary>
    public NoiseSchedule Schedule { get; }

    /// <summary>The network (EMA weights).</summary>
    public DiffusionNetwork Network { get; }

    /// <summary>The map between original units and model units.</summary>
    public Standardization Normalization { get; }

    /// <summary>
    /// The denoiser that samplers and the bound drive (in model units): the network's, with its x0 estimate projected
    /// onto the training data's bounding box (see <see cref="ClampedDenoiser"/>) unless <see cref="ClampToDataRange"/> is off.
    /// </summary>
    public IDenoiser Denoiser => ClampToDataRange && ClampedDenoiser is not null ? ClampedDenoiser : NetworkDenoiser;

    /// <summary>The network's own denoiser (its formulation's), without projection.</summary>
    public IDenoiser NetworkDenoiser { get; }

    /// <summary>The projected denoiser, when the config records the data's range.</summary>
    public IDenoiser? ClampedDenoiser { get; }

    /// <summary>Whether <see cref="Denoiser"/> projects x0 onto the data's bounding box (default true).</summary>
    public bool ClampToDataRange { get; set; } = true;

    /// <summary>Dimensions of one sample (columns of a table; channels × height × width of an image).</summary>
    public int Dimensions => (int)ExampleShape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The shape of one sample: [D] for tables, [C, H, W] for images.</summary>
    public long[] ExampleShape => Config.Data.ExampleShape;

    /// <summary>Whether the model generates images.</summary>
    public bool IsImage => Config.Data.IsImage;

    /// <summary>Number of classes the model is conditioned on (0 for an unconditional model).</summary>
    public int ClassCount => Network.ClassCount;

    /// <summary>Names of the classes (index = label); empty for an unconditional model.</summary>
    public IReadOnlyList<string> ClassNames => ClassCount > 0 && Config.Data.ClassNames is { } names ? names : Array.Empty<string>();

    /// <summary>
    /// Loads a model folder written by training (config.json and model.safetensors), checking that they fit together;
    /// <paramref name="model"/> may also name a model shipped with Diffuse, such as <c>fashion-mnist</c>
    /// (<see cref="ShippedModels"/>).
    /// </summary>
    /// <param name="model">A model folder, or the name of a shipped model.</param>
    /// <param name="device">The device to run on (default the CPU; see <see cref="Devices.Parse"/>).</param>
    /// <exception cref="DiffuseException">The folder does not exist or does not hold a valid model.</exception>
    public static DiffusionModel Load(string model, Device? device = null)
    {
        string folder = ShippedModels.Resolve(model);
        var files = new ModelFolder(folder);
        var repaired = files.RepairIfIdle();
        var config = DiffusionModelConfig.Load(files.File(ModelFolder.ConfigFile));
        string weights = files.Resolve(config, ModelFolder.WeightsFile);
        if (!File.Exists(weights)) throw new DiffuseException($"'{folder}' has config.json but no {ModelFolder.WeightsFile}. Train the model again.");
        CheckWeightsBeforeBuilding(config, weights);
        var network = config.CreateNetwork();
        try
        {
            using var scope = NewDisposeScope();
            StateDicts.LoadInto(network, Safetensors.Load(weights), weights);
        }
        catch
        {
            network.Dispose();
            throw;
        }
        network.eval();
        if (device is not null && device.type != DeviceType.CPU) network.to(device);
        return new DiffusionModel(config, network, ownsNetwork: true) { Folder = folder, RepairNotes = repaired };
    }

    /// <summary>The device the network and every tensor of sampling and evaluation live on (results come back on the CPU).</summary>
    public Device Device => Network.parameters().FirstOrDefault()?.device ?? CPU;

    /// <summary>What loading repaired in the folder (leftovers of an interrupted checkpoint write), one line each.</summary>
    public IReadOnlyList<string> RepairNotes { get; private init; } = Array.Empty<string>();

    /// <summary>The folder the model was loaded from (where its sampler.json lives), or null for a model in memory.</summary>
    public string? Folder { get; private init; }

    /// <summary>
    /// The sampler used when none is given (<see cref="SamplingDefaults"/>): the best setting recorded in the folder's
    /// sampler.json, else 50 DPM-Solver++(2M) steps for images and DDPM over every trained timestep for tables.
    /// </summary>
    /// <exception cref="DiffuseException">The folder's sampler.json is invalid.</exception>
    public ChosenSampler DefaultSampler => SamplingDefaults.For(IsImage, Schedule, Folder);

    /// <summary>Wraps a network in memory (e.g. a trainer's EMA network).</summary>
    public static DiffusionModel FromNetwork(DiffusionModelConfig config, DiffusionNetwork network, bool ownsNetwork) => new(config, network, ownsNetwork);

    /// <summary>
    /// Draws samples <paramref name="first"/> … <paramref name="first"/> + <paramref name="count"/> − 1 for
    /// <paramref name="seed"/>: float32 [count, D] in the data's original units for tables, [count, C, H, W] in [−1, 1]
    /// for images; owned by the caller. Sample i depends only on (seed, i) and, for a conditional model, its class.
    /// </summary>
    /// <param name="count">Number of samples.</param>
    /// <param name="seed">The seed; sample i's noise is a function of (seed, i) only.</param>
    /// <param name="options">Sampler and steps (default: <see cref="DefaultSampler"/>).</param>
    /// <param name="onStep">Called after every step of every batch (for progress bars and animations).</param>
    /// <param name="first">Number of the first sample (to continue or shard a run).</param>
    /// <param name="classes">
    /// For a class-conditional model, the class of each sample (<paramref name="count"/> labels in 0 … classes − 1);
    /// null samples unconditionally (the null class).
    /// </param>
    /// <param name="guidance">
    /// Classifier-free guidance scale w (Ho and Salimans 2022): ε̃ = ε_uncond + w·(ε_cond − ε_uncond); 1 is the plain
    /// conditional model, 0 the unconditional one, larger values trade diversity for fidelity (default
    /// <see cref="SamplingDefaults.Guidance"/>). This is the paper's w + 1: Ho and Salimans write ε̃ = (1 + w)·ε_cond − w·ε_uncond.
    /// </param>
    /// <param name="batchSize">Samples per batch (limits memory; does not change the samples).</param>
    /// <param name="cancellationToken">Stops the run after the current network evaluation; every intermediate tensor is freed.</param>
    /// <exception cref="DiffuseException">An argument is out of range (count, classes, guidance, sampler options).</exception>
    /// <exception cref="OperationCanceledException">The run was cancelled.</exception>
    public Tensor Sample(int count, ulong seed, SamplerOptions? options = null, Action<SamplerStep>? onStep = null, long first = 0,
        IReadOnlyList<long>? classes = null, double? guidance = null, int batchSize = 0, CancellationToken cancellationToken = default)
    {
        var batches = new List<Tensor>();
        try
        {
            foreach (var batch in SampleBatches(count, seed, options, onStep, first, classes, guidance, batchSize, cancellationToken))
                batches.Add(batch);
            return batches.Count == 1 ? batches[0].alias() : cat(batches, 0);
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
        }
    }

    /// <summary>Draws images as 8-bit pixels: <see cref="Sample"/> mapped by <see cref="ImageDataset.ToBytes"/>, uint8 [count, C, H, W].</summary>
    public Tensor SampleImages(int count, ulong seed, SamplerOptions? options = null, Action<SamplerStep>? onStep = null, long first = 0,
        IReadOnlyList<long>? classes = null, double? guidance = null, int batchSize = 0, CancellationToken cancellationToken = default)
    {
        if (!IsImage) throw new DiffuseException($"this model was trained on a table ({Config.Data.Source}), not on images.");
        using var samples = Sample(count, seed, options, onStep, first, classes, guidance, batchSize, cancellationToken);
        return ImageDataset.ToBytes(samples);
    }

    /// <summary>
    /// The denoiser a batch is sampled with: <see cref="Denoiser"/> when <paramref name="classes"/> is null, else
    /// classifier-free guidance towards <paramref name="classes"/> (one per row; −1 is the unconditional null class) with
    /// scale <paramref name="guidance"/>, projected as <see cref="Denoiser"/> is. Valid while the current dispose scope lives.
    /// </summary>
    public IDenoiser DenoiserFor(IReadOnlyList<long>? classes, double guidance)
    {
        if (classes is null) return Denoiser;
        var labels = tensor(classes.ToArray(), device: Device);
        IDenoiser guided = new ClassifierFreeGuidance(_networkDenoiser, labels, guidance);
        return ClampToDataRange && ClampedDenoiser is not null ? Reclamp(guided) : guided;
    }

    /// <summary>The same projection as <see cref="ClampedDenoiser"/>, around another denoiser (the guided one).</summary>
    private IDenoiser Reclamp(IDenoiser inner) => new ClampedDenoiser(inner, Schedule, _bounds!.Value.Lower, _bounds.Value.Upper);

    /// <summary>
    /// Where x̂0 is projected: [−1, 1] for images (DDPM's "clip_denoised"); for tables the training data's bounding box
    /// in model units, widened by 5% of its size on each side for unseen data; null when the config has no range.
    /// </summary>
    private static (double[] Lower, double[] Upper)? ClampBounds(DiffusionModelConfig config)
    {
        if (config.Data.IsImage) return (new[] { -1.0 }, new[] { 1.0 });
        int dims = config.Data.Columns.Length;
        if (config.Data.Min is not { } min || config.Data.Max is not { } max || min.Length != dims || max.Length != dims) return null;
        var lower = new double[dims];
        var upper = new double[dims];
        for (int d = 0; d < dims; d++)
        {
            double lo = (min[d] - config.Data.Mean[d]) / config.Data.Std[d], hi = (max[d] - config.Data.Mean[d]) / config.Data.Std[d];
            double margin = 0.05 * (hi - lo);
            lower[d] = lo - margin;
            upper[d] = hi + margin;
        }
        return (lower, upper);
    }

    /// <summary>
    /// The variational bound on the negative log-likelihood of <paramref name="data"/> (original units) in nats per
    /// dimension of the original units (see <see cref="VariationalBound"/>).
    /// </summary>
    /// <param name="data">Rows in the data's original units, [N, D].</param>
    /// <param name="seed">Seed of the noise.</param>
    /// <param name="variance">The reverse variance (a model that learns it uses its own).</param>
    /// <param name="onProgress">Called with (network evaluations done, total): the bound costs T evaluations per row.</param>
    /// <param name="cancellationToken">Stops the computation at the next network evaluation.</param>
    public BoundResult Bound(Tensor data, ulong seed = 0, DdpmVariance variance = DdpmVariance.Large, Action<int, int>? onProgress = null,
        CancellationToken cancellationToken = default)
    {
        CheckColumns(data);
        onProgress = Cancellable(onProgress, cancellationToken);
        using var scope = NewDisposeScope();
        var standardised = Normalization.Apply(data).to(Device);
        return VariationalBound.Compute(Denoiser, Schedule, standardised, seed, variance, new GaussianDecoder(),
            Normalization.LogScalePerDimension, onProgress: onProgress);
    }

    /// <summary>
    /// The exact negative log-likelihood of <paramref name="data"/> (original units) through the probability-flow ODE, in
    /// nats per dimension of the original units (see <see cref="OdeLikelihood"/>); the denoiser is <see cref="Denoiser"/>,
    /// the one the samplers drive. Default options: RK4 with 100 steps in log σ and one Rademacher probe per point.
    /// </summary>
    /// <param name="data">Rows in the data's original units, [N, D].</param>
    /// <param name="options">Solver and trace-estimator options.</param>
    /// <param name="seed">Seed of the trace probes.</param>
    /// <param name="onProgress">Called with (work done, total).</param>
    /// <param name="cancellationToken">Stops the computation at the next network evaluation.</param>
    public LikelihoodResult OdeNll(Tensor data, OdeLikelihoodOptions? options = null, ulong seed = 0, Action<int, int>? onProgress = null,
        CancellationToken cancellationToken = default)
    {
        CheckColumns(data);
        onProgress = Cancellable(onProgress, cancellationToken);
        options ??= new OdeLikelihoodOptions();
        if (options.Dequantize)
            throw new DiffuseException("dequantisation applies to 8-bit data in [−1, 1]; this model was trained on continuous columns.");
        using var scope = NewDisposeScope();
        var standardised = Normalization.Apply(data).to(Device);
        return OdeLikelihood.Compute(SigmaDenoiser.From(Denoiser, Schedule), Schedule, standardised, options, seed,
            Normalization.LogScalePerDimension, onProgress);
    }

    /// <summary>
    /// The variational bound on the negative log-likelihood of 8-bit <paramref name="images"/> with the discretised
    /// Gaussian decoder (Ho et al. 2020, §3.3, eq. 13), in nats per dimension (<see cref="BoundResult.BitsPerDim"/> gives
    /// bits); the likelihood of a conditional model is its unconditional one (the null class).
    /// </summary>
    /// <param name="images">8-bit images of the model's shape.</param>
    /// <param name="seed">Seed of the noise (and of the sampled timesteps).</param>
    /// <param name="variance">The reverse variance (a model that learns it uses its own).</param>
    /// <param name="onProgress">Called with (network evaluations done, total).</param>
    /// <param name="batchSize">Images per batch.</param>
    /// <param name="timestepSamples">
    /// 0 for every one of the T terms; K for an unbiased stratified estimate from K terms per batch (see
    /// <see cref="VariationalBound.Compute"/>), K/T of the cost.
    /// </param>
    /// <param name="cancellationToken">Stops the computation at the next network evaluation.</param>
    public BoundResult Bound(ImageDataset images, ulong seed = 0, DdpmVariance variance = DdpmVariance.Large, Action<int, int>? onProgress = null,
        int batchSize = 250, int timestepSamples = 0, CancellationToken cancellationToken = default)
    {
        CheckImages(images);
        onProgress = Cancellable(onProgress, cancellationToken);
        using var scope = NewDisposeScope();
        var x = ImageDataset.ToModelRange(images.Images).to(Device);
        return VariationalBound.Compute(Denoiser, Schedule, x, seed, variance, new DiscretizedGaussianDecoder(), 0, batchSize, onProgress, timestepSamples);
    }

    /// <summary>
    /// The negative log-likelihood of 8-bit <paramref name="images"/> through the probability-flow ODE (Song et al. 2021,
    /// App. D.2) in nats per dimension of the discrete data, with uniform dequantisation (set
    /// <see cref="OdeLikelihoodOptions.Dequantize"/>, the default here), so that it bounds the discrete NLL.
    /// </summary>
    /// <param name="images">8-bit images of the model's shape.</param>
    /// <param name="options">Solver and trace-estimator options (dequantisation on by default).</param>
    /// <param name="seed">Seed of the dequantisation noise and the trace probes.</param>
    /// <param name="onProgress">Called with (work done, total).</param>
    /// <param name="cancellationToken">Stops the computation at the next network evaluation.</param>
    public LikelihoodResult OdeNll(ImageDataset images, OdeLikelihoodOptions? options = null, ulong seed = 0, Action<int, int>? onProgress = null,
        CancellationToken cancellationToken = default)
    {
        CheckImages(images);
        onProgress = Cancellable(onProgress, cancellationToken);
        options ??= new OdeLikelihoodOptions(Dequantize: true);
        using var scope = NewDisposeScope();
        var x = ImageDataset.ToModelRange(images.Images).to(Device);
        return OdeLikelihood.Compute(SigmaDenoiser.From(Denoiser, Schedule), Schedule, x, options, seed, 0, onProgress);
    }

    /// <summary>
    /// A progress callback that first stops the work when <paramref name="cancellationToken"/> is cancelled, and applies
    /// the thread count of <see cref="TorchThreads"/> for this model: every evaluation calls it before its first step.
    /// </summary>
    private Action<int, int>? Cancellable(Action<int, int>? onProgress, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        TorchThreads.Apply(IsImage);
        if (!cancellationToken.CanBeCanceled) return onProgress;
        return (done, total) =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            onProgress?.Invoke(done, total);
        };
    }

    /// <summary>Throws a clear error when <paramref name="images"/> do not have this model's image shape.</summary>
    public void CheckImages(ImageDataset images)
    {
        if (!IsImage) throw new DiffuseException($"this model was trained on a table ({Config.Data.Source}), not on images. Give a CSV file or a built-in distribution.");
        var shape = ExampleShape;
        if (images.Channels != shape[0] || images.Height != shape[1] || images.Width != shape[2])
            throw new DiffuseException($"the images are {images.Channels}×{images.Height}×{images.Width} but the model was trained on {shape[0]}×{shape[1]}×{shape[2]} ({Config.Data.Source}). Give images of the same size and channels.");
    }

    /// <summary>Throws a clear error when <paramref name="data"/> does not have this model's columns.</summary>
    public void CheckColumns(Tensor data)
    {
        if (IsImage) throw new DiffuseException($"this model was trained on images ({Config.Data.Source}); give images, not a table.");
        if (data.dim() != 2 || data.shape[1] != Dimensions)
            throw new DiffuseException($"the data has shape [{string.Join(", ", data.shape)}] but the model was trained on {Dimensions} columns ({string.Join(", ", Config.Data.Columns)}). Give data with the same columns.");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsNetwork) Network.Dispose();
    }
}
