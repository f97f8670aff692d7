namespace Diffuse.Schedules;

/// <summary>The family of a discrete noise schedule.</summary>
public enum ScheduleKind
{
    /// <summary>Linear β from 1e-4 to 0.02 at T = 1000 (Ho et al. 2020), scaled by 1000/T so any T gives the same process.</summary>
    Linear,
    /// <summary>Cosine ᾱ (Nichol and Dhariwal 2021, eq. 17) with offset s = 0.008 and β clipped at 0.999.</summary>
    Cosine,
    /// <summary>Sigmoid ᾱ (Jabri et al. 2022) with start −3, end 3, temperature 1, β clipped at 0.999.</summary>
    Sigmoid,
    /// <summary>A β array given by the user.</summary>
    Custom,
}

/// <summary>
/// A discrete variance-preserving noise schedule (Ho et al. 2020, §2): β_t for t = 1 … T and the derived tables, all in
/// double precision. Notation map: index n = 0 … T−1 of every array holds the paper's t = n + 1;
/// α_t = 1 − β_t; ᾱ_t = Π_{s≤t} α_s; SNR_t = ᾱ_t / (1 − ᾱ_t); σ_t (noise level of the equivalent
/// variance-exploding process) = √((1 − ᾱ_t)/ᾱ_t). The forward marginal is q(z_t | x) = N(√ᾱ_t·x, (1 − ᾱ_t)·I).
/// </summary>
public sealed class NoiseSchedule
{
    private NoiseSchedule(ScheduleKind kind, double[] betas, bool zeroTerminalSnr = false)
    {
        if (betas.Length == 0) throw new DiffuseException("a noise schedule needs at least one timestep.");
        for (int n = 0; n < betas.Length; n++)
        {
            // Only the zero-terminal-SNR rescaling may end in β_T = 1 (ᾱ_T = 0): it is built that way, never given.
            bool terminalOne = zeroTerminalSnr && n == betas.Length - 1 && betas[n] == 1.0;
            if (!(betas[n] > 0 && betas[n] < 1) && !terminalOne)
                throw new DiffuseException($"β at timestep {n + 1} is {betas[n]}; every β must lie strictly between 0 and 1.");
        }
        Kind = kind;
        _betas = betas;
        _alphaBars = new double[betas.Length];
        _logSigmas = new double[betas.Length];
        double product = 1;
        for (int n = 0; n < betas.Length; n++)
        {
            product *= 1 - betas[n];
            _alphaBars[n] = product;
            _logSigmas[n] = 0.5 * (Math.Log(1 - product) - Math.Log(product));
        }
    }

    /// <summary>The schedule's family.</summary>
    public ScheduleKind Kind { get; }

    /// <summary>Number of diffusion steps T.</summary>
    public int Timesteps => _betas.Length;

    private readonly double[] _betas;
    private readonly double[] _alphaBars;
    private readonly double[] _logSigmas;     // log σ_n, increasing in n; +∞ at the last index under zero terminal SNR

    /// <summary>β_t at index t − 1: the variance added by forward step t.</summary>
    public IReadOnlyList<double> Betas => _betas;

    /// <summary>ᾱ_t at index t − 1: the signal fraction of z_t, Π_{s≤t}(1 − β_s).</summary>
    public IReadOnlyList<double> AlphaBars => _alphaBars;

    /// <summary>ᾱ at a timestep index n (paper's t = n + 1); index −1 stands for t = 0, where ᾱ = 1.</summary>
    public double AlphaBar(int n) => n < 0 ? 1.0 : _alphaBars[n];

    /// <summary>Signal-to-noise ratio ᾱ/(1 − ᾱ) at timestep index n.</summary>
    public double Snr(int n) => _alphaBars[n] / (1 - _alphaBars[n]);

    /// <summary>Log signal-to-noise ratio at timestep index n.</summary>
    public double LogSnr(int n) => Math.Log(_alphaBars[n]) - Math.Log(1 - _alphaBars[n]);

    /// <summary>Noise level σ = √((1 − ᾱ)/ᾱ) at timestep index n (+∞ where ᾱ = 0).</summary>
    public double Sigma(int n) => Math.Sqrt((1 - _alphaBars[n]) / _alphaBars[n]);

    /// <summary>Whether ᾱ_T = 0 exactly (Lin et al. 2023): the last timestep is pure noise and σ_max is infinite.</summary>
    public bool HasZeroTerminalSnr => _alphaBars[^1] == 0;

    /// <summary>
    /// The fractional timestep index whose noise level is <paramref name="sigma"/>: log σ is interpolated linearly between
    /// neighbouring trained timesteps (k-diffusion's map from a discrete schedule to continuous noise levels), so a
    /// trained σ_n maps to exactly n. Levels outside the trained range clamp to 0
    /// or T − 1; under zero terminal SNR every finite σ above the largest finite trained level maps to T − 2, and
    /// σ = +∞ to T − 1.
    /// </summary>
    public double TimestepOfSigma(double sigma)
    {
        if (double.IsNaN(sigma)) throw new ArgumentException("σ is NaN", nameof(sigma));
        double logSigma = Math.Log(sigma);
        int found = Array.BinarySearch(_logSigmas, logSigma);
        if (found >= 0) return found;
        int above = ~found;
        if (above == 0) return 0;
        if (above == _logSigmas.Length) return _logSigmas.Length - 1;
        int below = above - 1;
        if (double.IsPositiveInfinity(_logSigmas[above])) return below;
        return below + (logSigma - _logSigmas[below]) / (_logSigmas[above] - _logSigmas[below]);
    }

    /// <summary>The noise level at a fractional timestep index (the inverse of <see cref="TimestepOfSigma"/>), clamped to [0, T − 1].</summary>
    public double SigmaOfTimestep(double timestep)
    {
        double t = Math.Clamp(timestep, 0, _logSigmas.Length - 1);
        int below = (int)Math.Floor(t);
        double fraction = t - below;
        if (fraction == 0) return Sigma(below);
        return Math.Exp(_logSigmas[below] + fraction * (_logSigmas[below + 1] - _logSigmas[below]));
    }

    /// <summary>ᾱ = 1/(1 + σ²) of a noise level σ (0 at σ = +∞); the inverse of σ = √((1 − ᾱ)/ᾱ).</summary>
    public static double AlphaBarOfSigma(double sigma) => 1 / (1 + sigma * sigma);

    /// <summary>
    /// The same process with β rescaled to zero terminal SNR (Lin et al. 2023, Algorithm 1): √ᾱ is shifted so that
    /// √ᾱ_T = 0 and scaled so that √ᾱ_1 is unchanged, √ᾱ'_t = (√ᾱ_t − √ᾱ_T)·√ᾱ_1/(√ᾱ_1 − √ᾱ_T), then β'_t = 1 − ᾱ'_t/ᾱ'_{t−1}
    /// (so β'_T = 1). The last step is then pure noise; ε-prediction cannot recover x0 there and is rejected.
    /// </summary>
    public NoiseSchedule WithZeroTerminalSnr()
    {
        int count = _betas.Length;
        if (count < 2) throw new DiffuseException("zero terminal SNR needs at least two timesteps.");
        double first = Math.Sqrt(_alphaBars[0]), last = Math.Sqrt(_alphaBars[^1]);
        var rescaled = new double[count];
        for (int n = 0; n < count; n++)
        {
            double sqrtAlphaBar = (Math.Sqrt(_alphaBars[n]) - last) * first / (first - last);
            rescaled[n] = sqrtAlphaBar * sqrtAlphaBar;
        }
        var betas = new double[count];
        for (int n = 0; n < count; n++) betas[n] = 1 - (n == 0 ? rescaled[0] : rescaled[n] / rescaled[n - 1]);
        return new NoiseSchedule(Kind, betas, zeroTerminalSnr: true);
    }

    /// <summary>Builds the schedule a <see cref="ScheduleConfig"/> describes.</summary>
    public static NoiseSchedule Create(ScheduleConfig config)
    {
        config.Validate();
        var schedule = config.Kind switch
        {
            ScheduleKind.Linear => Linear(config.Timesteps),
            ScheduleKind.Cosine => Cosine(config.Timesteps),
            ScheduleKind.Sigmoid => Sigmoid(config.Timesteps),
            ScheduleKind.Custom => FromBetas(config.Betas!),
            _ => throw new DiffuseException($"unknown schedule kind {config.Kind}."),
        };
        return config.ZeroTerminalSnr ? schedule.WithZeroTerminalSnr() : schedule;
    }

    /// <summary>
    /// Linear schedule of Ho et al. 2020 (β from 1e-4 to 0.02 at T = 1000), with both ends scaled by 1000/T as in
    /// Nichol and Dhariwal 2021 so that any T describes the same continuous process.
    /// </summary>
    public static NoiseSchedule Linear(int timesteps)
    {
        RequirePositive(timesteps);
        double scale = 1000.0 / timesteps;
        double start = scale * 1e-4, end = Math.Min(scale * 0.02, 0.999);
        var betas = new double[timesteps];
        for (int n = 0; n < timesteps; n++)
            betas[n] = timesteps == 1 ? start : start + (end - start) * n / (timesteps - 1);
        return new NoiseSchedule(ScheduleKind.Linear, betas);
    }

    /// <summary>
    /// Cosine schedule of Nichol and Dhariwal 2021, eq. 17: ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T) + s)/(1 + s)·π/2) with
    /// s = 0.008, and β_t = min(1 − ᾱ_t/ᾱ_{t−1}, 0.999).
    /// </summary>
    public static NoiseSchedule Cosine(int timesteps, double offset = 0.008)
    {
        RequirePositive(timesteps);
        double F(double t) { double c = Math.Cos((t / timesteps + offset) / (1 + offset) * Math.PI / 2); return c * c; }
        return FromAlphaBarFunction(ScheduleKind.Cosine, timesteps, t => F(t) / F(0));
    }

    /// <summary>
    /// Sigmoid schedule of Jabri et al. 2022: ᾱ(t) = (σ_end − σ((t/T·(end − start) + start)/τ))/(σ_end − σ_start) with the
    /// logistic σ, start −3, end 3, τ = 1, and β clipped at 0.999.
    /// </summary>
    public static NoiseSchedule Sigmoid(int timesteps, double start = -3, double end = 3, double tau = 1)
    {
        RequirePositive(timesteps);
        static double Logistic(double v) => 1 / (1 + Math.Exp(-v));
        double vStart = Logistic(start / tau), vEnd = Logistic(end / tau);
        return FromAlphaBarFunction(ScheduleKind.Sigmoid, timesteps,
            t => (vEnd - Logistic((t / timesteps * (end - start) + start) / tau)) / (vEnd - vStart));
    }

    /// <summary>A schedule from a user-given β array (β_1 … β_T, each in (0, 1)).</summary>
    public static NoiseSchedule FromBetas(IReadOnlyList<double> betas) => new(ScheduleKind.Custom, betas.ToArray());

    private static NoiseSchedule FromAlphaBarFunction(ScheduleKind kind, int timesteps, Func<double, double> alphaBar)
    {
        var betas = new double[timesteps];
        for (int n = 0; n < timesteps; n++)
            betas[n] = Math.Min(1 - alphaBar(n + 1) / alphaBar(n), 0.999);
        return new NoiseSchedule(kind, betas);
    }

    private static void RequirePositive(int timesteps)
    {
        if (timesteps < 1) throw new DiffuseException($"the number of timesteps must be at least 1 (got {timesteps}).");
    }
}
