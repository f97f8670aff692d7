using Diffuse.Denoisers;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Formulations;

/// <summary>
/// Ho et al. 2020 (Algorithm 1, eq. 14): timesteps t drawn uniformly from the configured schedule, the noised state
/// z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε, the network conditioned on t, and the simple MSE against its ε, x0 or v target
/// (<see cref="PredictionConversion"/>), optionally weighted by min-SNR-γ (Hang et al. 2023). With
/// <see cref="FormulationConfig.LearnedVariance"/> the network also outputs its reverse-step variances (Nichol and
/// Dhariwal 2021, eq. 15) and the loss adds λ·L_vlb (eq. 16, <see cref="HybridLoss"/>), optionally with timesteps drawn
/// by importance (eq. 18, <see cref="TimestepImportance"/>). The denoiser is <see cref="NetworkDenoiser"/>.
/// </summary>
public sealed class DdpmFormulation : Formulation
{
    private Tensor? _alphaBars;   // [T] float32 on the device of the last batch
    private Tensor? _snr;         // [T] float32

    /// <summary>DDPM with the settings of <paramref name="config"/>.</summary>
    public DdpmFormulation(FormulationConfig config) : base(config) { }

    /// <inheritdoc />
    public override int NetworkOutputFactor => Config.LearnedVariance ? 2 : 1;

    /// <inheritdoc />
    public override bool DrawsTimestepsByImportance => Config.ImportanceSampling;

    /// <inheritdoc />
    public override void Validate(Prediction prediction, ScheduleConfig schedule, double? minSnrGamma)
    {
        PredictionConversion.RequireCompatible(prediction, schedule.ZeroTerminalSnr);
    }

    /// <inheritdoc />
    public override NoiseSchedule CreateSchedule(ScheduleConfig schedule) => NoiseSchedule.Create(schedule);

    /// <inheritdoc />
    public override int NetworkTimesteps(ScheduleConfig schedule) => schedule.Timesteps;

    /// <inheritdoc />
    public override IConditionalDenoiser CreateDenoiser(ConditionedNetwork network, NoiseSchedule schedule, Prediction prediction) =>
        new NetworkDenoiser(network, schedule, prediction, Config.LearnedVariance);

    /// <inheritdoc />
    public override TrainingLoss Loss(TrainingBatch batch)
    {
        var positions = batch.Positions;
        var schedule = batch.Schedule;
        var device = batch.Device;
        var timesteps = new long[positions.Length];
        for (int i = 0; i < positions.Length; i++)
            timesteps[i] = batch.Importance is { } drawn
                ? drawn.Timesteps[positions[i]]
                : SeededNoise.UniformInt(batch.Seed, batch.TimestepStream, (ulong)positions[i], schedule.Timesteps);
        var t = tensor(timesteps, device: device);
        var broadcast = new long[batch.X0.dim()];
        Array.Fill(broadcast, 1L);
        broadcast[0] = positions.Length;
        var (alphaBars, snr) = Tables(schedule, device);
        var alphaBar = alphaBars.index_select(0, t).view(broadcast);
        var z = GaussianProcess.Noise(batch.X0, alphaBar, batch.Eps);
        var output = batch.Network.Call(z, t.to_type(ScalarType.Float32), batch.Classes);
        Tensor? varianceOutput = null;
        if (Config.LearnedVariance) (output, varianceOutput) = LearnedVariance.Split(output, batch.X0.shape[1]);
        var target = PredictionConversion.Target(batch.Prediction, batch.X0, batch.Eps, alphaBar);
        var perExample = (output - target).square().flatten(1).mean(new long[] { 1 });
        if (batch.MinSnrGamma is { } gamma)
            perExample = perExample * PredictionConversion.MinSnrWeight(batch.Prediction, snr.index_select(0, t), gamma);
        if (varianceOutput is not null)
            perExample = HybridLoss.Combine(perExample,
                HybridLoss.VlbTerm(schedule, batch.Prediction, batch.X0, z, t, output, varianceOutput, batch.Decoder), schedule.Timesteps, Config.HybridLambda);
        var recorded = perExample;
        if (batch.Importance is { } importance)
            perExample = perExample * tensor(positions.Select(j => (float)importance.Weights[j]).ToArray(), device: device);
        var quarter = (t * TrainingLoss.Quartiles).div(schedule.Timesteps, rounding_mode: RoundingMode.floor);
        return new TrainingLoss(perExample, recorded, quarter);
    }

    /// <summary>ᾱ_t and SNR_t of every timestep as float32 tensors on <paramref name="device"/>, made once.</summary>
    private (Tensor AlphaBars, Tensor Snr) Tables(NoiseSchedule schedule, Device device)
    {
        if (_alphaBars is null || _snr is null || _alphaBars.device != device || _alphaBars.shape[0] != schedule.Timesteps)
        {
            _alphaBars?.Dispose();
            _snr?.Dispose();
            _alphaBars = tensor(schedule.AlphaBars.ToArray(), dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
            _snr = tensor(Enumerable.Range(0, schedule.Timesteps).Select(schedule.Snr).ToArray(), dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
        }
        return (_alphaBars, _snr);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        _alphaBars?.Dispose();
        _snr?.Dispose();
        _alphaBars = _snr = null;
    }
}
