using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Denoisers;
using Diffuse.Evaluation;
using Diffuse.Models;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Training;
using static TorchSharp.torch;

namespace Diffuse;

/// <summary>
/// A trained diffusion model ready to sample and evaluate: its configuration, noise schedule, network (the EMA
/// weights) and data normalisation. Inputs and outputs are in the data's original units.
/// </summary>
public sealed class DiffusionModel : IDisposable
{
    private readonly bool _ownsNetwork;

    private DiffusionModel(DiffusionModelConfig config, MlpNetwork network, bool ownsNetwork)
    {
        Config = config;
        Schedule = NoiseSchedule.Create(config.Schedule);
        Network = network;
        Normalization = new Standardization(config.Data.Mean, config.Data.Std);
        NetworkDenoiser = new NetworkDenoiser(network, Schedule, config.Prediction);
        if (config.Data.Min is { } min && config.Data.Max is { } max && min.Length == Dimensions && max.Length == Dimensions)
        {
            // The data's bounding box in model units, widened by 5% of its size on each side for unseen data.
            var lower = new double[Dimensions];
            var upper = new double[Dimensions];
            for (int d = 0; d < Dimensions; d++)
            {
                double lo = (min[d] - config.Data.Mean[d]) / config.Data.Std[d], hi = (max[d] - config.Data.Mean[d]) / config.Data.Std[d];
                double margin = 0.05 * (hi - lo);
                lower[d] = lo - margin;
                upper[d] = hi + margin;
            }
            ClampedDenoiser = new ClampedDenoiser(NetworkDenoiser, Schedule, lower, upper);
        }
        _ownsNetwork = ownsNetwork;
    }

    /// <summary>The configuration the model was trained with.</summary>
    public DiffusionModelConfig Config { get; }

    /// <summary>The noise schedule.</summary>
    public NoiseSchedule Schedule { get; }

    /// <summary>The network (EMA weights).</summary>
    public MlpNetwork Network { get; }

    /// <summary>The map between original units and model units.</summary>
    public Standardization Normalization { get; }

    /// <summary>
    /// The denoiser that samplers and the bound drive (in model units): the network's, with its x0 estimate projected
    /// onto the training data's bounding box (see <see cref="ClampedDenoiser"/>) unless <see cref="ClampToDataRange"/> is off.
    /// </summary>
    public IDenoiser Denoiser => ClampToDataRange && ClampedDenoiser is not null ? ClampedDenoiser : NetworkDenoiser;

    /// <summary>The network's own denoiser, without projection.</summary>
    public IDenoiser NetworkDenoiser { get; }

    /// <summary>The projected denoiser, when the config records the data's range.</summary>
    public IDenoiser? ClampedDenoiser { get; }

    /// <summary>Whether <see cref="Denoiser"/> projects x0 onto the data's bounding box (default true).</summary>
    public bool ClampToDataRange { get; set; } = true;

    /// <summary>Dimensions of one sample.</summary>
    public int Dimensions => Config.Network.Dimensions;

    /// <summary>Loads a model folder written by training (config.json and model.safetensors), checking that they fit together.</summary>
    public static DiffusionModel Load(string folder)
    {
        if (!Directory.Exists(folder)) throw new DiffuseException($"model folder '{folder}' does not exist. Give the --out folder of 'diffuse train'.");
        var config = DiffusionModelConfig.Load(Path.Combine(folder, Trainer.ConfigFile));
        string weights = Path.Combine(folder, Trainer.WeightsFile);
        if (!File.Exists(weights)) throw new DiffuseException($"'{folder}' has config.json but no {Trainer.WeightsFile}. Train the model again.");
        var network = new MlpNetwork(config.Network, config.Schedule.Timesteps);
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
        return new DiffusionModel(config, network, ownsNetwork: true);
    }

    /// <summary>Wraps a network in memory (e.g. a trainer's EMA network).</summary>
    public static DiffusionModel FromNetwork(DiffusionModelConfig config, MlpNetwork network, bool ownsNetwork) => new(config, network, ownsNetwork);

    /// <summary>
    /// Draws samples <paramref name="first"/> … <paramref name="first"/> + <paramref name="count"/> − 1 for
    /// <paramref name="seed"/>, in the data's original units: float32 [count, D], owned by the caller. Sample i depends
    /// only on (seed, i).
    /// </summary>
    public Tensor Sample(int count, ulong seed, SamplerOptions? options = null, Action<SamplerStep>? onStep = null, long first = 0)
    {
        options ??= new SamplerOptions();
        using var scope = NewDisposeScope();
        var z = Sampler.Generate(Denoiser, Schedule, new long[] { Dimensions }, count, seed, options, first, onStep: onStep);
        return Normalization.Invert(z).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The variational bound on the negative log-likelihood of <paramref name="data"/> (original units) in nats per
    /// dimension of the original units (see <see cref="VariationalBound"/>).
    /// </summary>
    public BoundResult Bound(Tensor data, ulong seed = 0, DdpmVariance variance = DdpmVariance.Large, Action<int, int>? onProgress = null)
    {
        CheckColumns(data);
        using var scope = NewDisposeScope();
        var standardised = Normalization.Apply(data);
        return VariationalBound.Compute(Denoiser, Schedule, standardised, seed, variance, new GaussianDecoder(),
            Normalization.LogScalePerDimension, onProgress: onProgress);
    }

    /// <summary>
    /// The exact negative log-likelihood of <paramref name="data"/> (original units) through the probability-flow ODE, in
    /// nats per dimension of the original units (see <see cref="OdeLikelihood"/>); the denoiser is <see cref="Denoiser"/>,
    /// the one the samplers drive. Default options: RK4 with 100 steps in log σ and one Rademacher probe per point.
    /// </summary>
    public LikelihoodResult OdeNll(Tensor data, OdeLikelihoodOptions? options = null, ulong seed = 0, Action<int, int>? onProgress = null)
    {
        CheckColumns(data);
        options ??= new OdeLikelihoodOptions();
        if (options.Dequantize)
            throw new DiffuseException("dequantisation applies to 8-bit data in [−1, 1]; this model was trained on continuous columns.");
        using var scope = NewDisposeScope();
        var standardised = Normalization.Apply(data);
        return OdeLikelihood.Compute(SigmaDenoiser.From(Denoiser, Schedule), Schedule, standardised, options, seed,
            Normalization.LogScalePerDimension, onProgress);
    }

    /// <summary>Throws a clear error when <paramref name="data"/> does not have this model's columns.</summary>
    public void CheckColumns(Tensor data)
    {
        if (data.dim() != 2 || data.shape[1] != Dimensions)
            throw new DiffuseException($"the data has shape [{string.Join(", ", data.shape)}] but the model was trained on {Dimensions} columns ({string.Join(", ", Config.Data.Columns)}). Give data with the same columns.");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsNetwork) Network.Dispose();
    }
}
